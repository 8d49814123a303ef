"""The code that ran: the git commit of the caller's repository and whether it was dirty.

Found from the caller's source file. With the `git` executable: `rev-parse HEAD`, and dirty
when a tracked file differs from HEAD (`status --porcelain --untracked-files=no`) or the
caller's file itself is not tracked (its content is then in no commit). Without it, HEAD is
read from the `.git` directory (loose or packed refs) and the dirty flag is unknown. No git
repository at all is fine: nothing is recorded, and the lineage answers' completeness check
says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class CodeVersion:
    commit: str
    dirty: bool | None  # None: could not tell (no git executable)
    source_file: str  # the caller's file, relative to the repository root

    @property
    def label(self) -> str:
        """`git:<commit>`, with `+dirty` (or `+unknown`) when the working tree may differ."""
        suffix = {True: "+dirty", False: "", None: "+unknown"}[self.dirty]
        return f"git:{self.commit}{suffix}"


def _git(args: list[str], cwd: Path) -> str | None:
    executable = shutil.which("git")
    if executable is None:
        return None
    try:
        done = subprocess.run(
            [executable, *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # status must not take the index lock
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _find_git_dir(start: Path) -> tuple[Path, Path] | None:
    """(work tree root, git directory) of the repository holding `start`, by reading the tree."""
    for directory in (start, *start.parents):
        candidate = directory / ".git"
        if candidate.is_dir():
            return directory, candidate
        if candidate.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = candidate.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text.split(":", 1)[1].strip())
                return directory, (target if target.is_absolute() else directory / target)
    return None


def _read_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head.split(":", 1)[1].strip()
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip() or None
    try:
        for line in (common / "packed-refs").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    except OSError:
        pass
    return None  # an unborn branch: no commit yet


def code_version(source_file: str | os.PathLike[str]) -> CodeVersion | None:
    """The code version of the repository holding `source_file`, or None outside git."""
    source = Path(source_file).resolve()
    start = source.parent
    top = _git(["rev-parse", "--show-toplevel"], start)
    if top is not None:
        root = Path(top.strip())
        commit = (_git(["rev-parse", "--verify", "HEAD"], start) or "").strip()
        if not commit:
            return None
        status = _git(["status", "--porcelain", "--untracked-files=no"], root)
        tracked = _git(["ls-files", "--", str(source)], root)
        dirty: bool | None = None
        if status is not None and tracked is not None:
            dirty = bool(status.strip()) or not tracked.strip()
        return CodeVersion(commit, dirty, _relative(source, root))
    found = _find_git_dir(start)
    if found is None:
        return None
    root, git_dir = found
    head = _read_head(git_dir)
    return None if head is None else CodeVersion(head, None, _relative(source, root))


def _relative(source: Path, root: Path) -> str:
    try:
        return source.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(source)

"""Code version from the caller's git repository (with and without the git executable),
the environment, the step record's JSON form, and the journal."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import pytest

from lineagedb.track import codeversion, environment
from lineagedb.track.journal import Journal
from lineagedb.track.record import ArtifactRecord, CodeRecord, StepRecord, plain_param
from tests.track.gitrepo import git, make_repo


def test_clean_repository_gives_commit_and_not_dirty(tmp_path: Path) -> None:
    commit = make_repo(tmp_path / "repo", {"pipeline/train.py": "print('hi')\n"})
    found = codeversion.code_version(tmp_path / "repo" / "pipeline" / "train.py")
    assert found is not None
    assert (found.commit, found.dirty, found.source_file) == (commit, False, "pipeline/train.py")
    assert found.label == f"git:{commit}"


def test_modified_tracked_file_is_dirty_and_untracked_output_is_not(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"train.py": "a = 1\n", "lib.py": "b = 2\n"})
    (repo / "output.bin").write_bytes(b"not source")  # untracked files elsewhere do not count
    clean = codeversion.code_version(repo / "train.py")
    assert clean is not None and clean.dirty is False
    (repo / "lib.py").write_text("b = 3\n")
    found = codeversion.code_version(repo / "train.py")
    assert found is not None and found.dirty is True and found.label.endswith("+dirty")


def test_untracked_caller_file_is_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, {"lib.py": "b = 2\n"})
    (repo / "new_step.py").write_text("x = 1\n")
    found = codeversion.code_version(repo / "new_step.py")
    assert found is not None and found.dirty is True


def test_without_git_executable_head_is_read_from_the_git_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    commit = make_repo(repo, {"train.py": "a = 1\n"})
    git(repo, "pack-refs", "--all")  # the branch now lives only in packed-refs
    monkeypatch.setattr(codeversion.shutil, "which", lambda name: None)
    found = codeversion.code_version(repo / "train.py")
    assert found is not None
    assert (found.commit, found.dirty, found.label) == (commit, None, f"git:{commit}+unknown")


def test_outside_git_nothing_is_recorded(tmp_path: Path) -> None:
    script = tmp_path / "alone.py"
    script.write_text("x = 1\n")
    assert codeversion.code_version(script) is None


def test_environment_names_python_platform_and_packages_digest() -> None:
    found = environment.environment()
    assert found["python_version"] == platform.python_version()
    assert found["platform"] == platform.platform()
    packages = environment.installed_packages()
    assert any(line.startswith("grpcio==") for line in packages)
    listing = "".join(f"{line}\n" for line in packages).encode()
    assert found["packages_sha256"] == hashlib.sha256(listing).hexdigest()
    assert found["packages_count"] == len(packages)


def _record() -> StepRecord:
    return StepRecord(
        step_id="0" * 32,
        step_name="Trainer",
        pipeline="churn",
        run="2026-12-03",
        started_ms=1,
        params={"lr": 0.1, "layers": [1, 2], "name": "x"},
        inputs=[ArtifactRecord(key="dataset", index=0, uri="/d", type_name="Dataset", local=True, sha256="ab")],
        code=CodeRecord(commit="c", dirty=False, source_file="t.py", label="git:c"),
    )


def test_record_round_trips_through_json() -> None:
    record = _record()
    assert StepRecord.from_json(record.to_json()) == record
    with pytest.raises(ValueError, match="format_version"):
        StepRecord.from_json(json.dumps({"step_id": "x"}))


def test_plain_param_keeps_json_and_stringifies_the_rest() -> None:
    assert plain_param(3) == 3 and plain_param(True) is True and plain_param("s") == "s"
    assert plain_param((1, 2)) == [1, 2] and plain_param({"a": {"b": 1}}) == {"a": {"b": 1}}
    assert plain_param(float("nan")) == "nan"
    assert plain_param(Path("/x")) == "/x"


def test_journal_keeps_steps_in_start_order_until_removed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    later, earlier = _record(), _record()
    later.step_id, later.started_ms = "b" * 32, 20
    earlier.step_id, earlier.started_ms = "a" * 32, 10
    journal.append(later)
    journal.append(earlier)
    pending = journal.pending()
    assert [Journal.read(p).step_id for p in pending] == [earlier.step_id, later.step_id]
    assert oct(os.stat(pending[0]).st_mode & 0o777) == "0o600"
    assert not [p for p in (tmp_path / "journal").iterdir() if p.name.endswith(".tmp")]
    journal.remove(pending[0])
    assert [Journal.read(p).step_id for p in journal.pending()] == [later.step_id]

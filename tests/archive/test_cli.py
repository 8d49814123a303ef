"""`lineagedb export`, `lineagedb import` and `lineagedb export verify` from the command line:
options anywhere among the words, exit codes, what is printed."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from lineagedb import cli
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.service.metadata_store import MetadataStore
from tests.archive.conftest import scratch_store, write_varied_store

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        code = cli.main(list(argv))
    finally:  # main() sets up logging to this test's captured stderr: put pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_import_verify_commands(
    store: MetadataStore,
    database_url: str,
    other_backend: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = write_varied_store(store)
    out = tmp_path / "store.jsonl.gz"
    code, stdout, _ = _run(capsys, "export", "--database", database_url, str(out))
    assert code == 0
    assert stdout.startswith("exported the whole store of ")
    assert f" to {out}: " in stdout and " rows/s)" in stdout
    assert "  namespace 1, type 30, type_property 18, parent_type 2, artifact 23, artifact_property 60," in stdout
    # An existing file is kept unless --force; the option may follow the path.
    code, _, stderr = _run(capsys, "export", str(out), "--database", database_url)
    assert code == 2 and f"lineagedb: {out} exists; give --force to replace it" in stderr
    code, _, _ = _run(capsys, "export", str(out), "--force", "--database", database_url)
    assert code == 0
    # verify: options before, between or after the words.
    for argv in (
        ("export", "verify", "--database", database_url, str(out)),
        ("export", "--database", database_url, "verify", str(out)),
        ("export", "verify", str(out), "--database", database_url),
    ):
        code, stdout, _ = _run(capsys, *argv)
        assert code == 0, argv
        assert stdout.splitlines()[-1].startswith("equal: ")
    with scratch_store(other_backend, tmp_path / "target") as target:
        code, stdout, _ = _run(capsys, "import", "--database", target.url, str(out))
        assert code == 0
        assert "  ids remapped: 0\n" in stdout
        assert "types already in the database (identical, used as they are): 9" in stdout
        code, stdout, _ = _run(capsys, "export", "verify", "--database", target.url, str(out))
        assert code == 0
        # A second import is refused (exit 2), saying why.
        code, _, stderr = _run(capsys, "import", str(out), "--database", target.url)
        assert code == 2 and "an import adds nodes, it does not merge them" in stderr
    # The source changes: verify exits 1.
    store.put_contexts(svc.PutContextsRequest(contexts=[mlmd.Context(type_id=ids["types"][2], name="late")]))
    code, stdout, _ = _run(capsys, "export", "verify", "--database", database_url, str(out))
    assert code == 1
    assert "DIFFERENT" in stdout and stdout.splitlines()[-1] == "different: 1 section differs (context)"


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    for argv, message in (
        (("export", "--database", url), "usage: lineagedb export"),
        (("export", "verify", "--database", url), "usage: lineagedb export verify"),
        (("export", "a.gz", "b.gz", "--database", url), "usage: lineagedb export"),
        (("export", "verify", "a.gz", "--namespace", "x", "--database", url), "usage: lineagedb export verify"),
    ):
        code, _, stderr = _run(capsys, *argv)
        assert code == 2, argv
        assert message in stderr, argv
    code, _, stderr = _run(capsys, "import", "--database", url, str(tmp_path / "missing.jsonl.gz"))
    assert code == 2 and "lineagedb: cannot read the archive" in stderr
    not_gzip = tmp_path / "plain.txt"
    not_gzip.write_text("hello\n")
    code, _, stderr = _run(capsys, "import", "--database", url, str(not_gzip))
    assert code == 2 and "lineagedb: not a usable archive: " in stderr and "not gzip-compressed" in stderr


def test_the_installed_command(tmp_path: Path) -> None:
    """The same through `python -m lineagedb`, as an operator runs it (SQLite to SQLite)."""
    target, path = tmp_path / "b.db", tmp_path / "a.jsonl.gz"
    with scratch_store("sqlite", tmp_path) as opened:
        write_varied_store(opened.store)
        url = opened.url
    command = [sys.executable, "-m", "lineagedb"]
    done = subprocess.run(
        [*command, "export", "--database", url, str(path)], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*command, "import", "--database", f"sqlite:///{target}", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ids remapped: 0" in done.stdout
    done = subprocess.run(
        [*command, "export", "verify", "--database", f"sqlite:///{target}", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("equal: ")

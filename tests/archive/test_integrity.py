"""A damaged archive is refused with a message that says what is wrong, before anything is
imported: cut short (in the gzip stream or at a line), edited rows, an edited header or
trailer, another format, a newer version."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from lineagedb import errors
from lineagedb.service.metadata_store import MetadataStore
from lineagedb.store import archive
from lineagedb.store.schema import schema_for
from tests.archive.conftest import export, import_, scratch_store, verify, write_varied_store


def _lines(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as file:
        return file.read().splitlines(keepends=True)


def _rewrite(path: Path, lines: list[bytes]) -> None:
    with gzip.open(path, "wb") as file:
        file.write(b"".join(lines))


def _edit_value(lines: list[bytes]) -> list[bytes]:
    """A property value changed, everything else intact."""
    for index, line in enumerate(lines):
        record = json.loads(line)
        if record.get("t") == "artifact_property" and "int_value" in record:
            record["int_value"] += 1
            lines[index] = (json.dumps(record, separators=(",", ":")) + "\n").encode()
            return lines
    raise AssertionError("no int property")


def _edit_and_fix_counts(lines: list[bytes]) -> list[bytes]:
    """A row dropped and the trailer's count lowered to match: the digest still tells."""
    index = next(i for i, line in enumerate(lines) if json.loads(line).get("t") == "event")
    del lines[index]
    trailer = json.loads(lines[-1])
    trailer["counts"]["event"] -= 1
    trailer["rows"] -= 1
    lines[-1] = (json.dumps(trailer) + "\n").encode()
    return lines


def _edit_header(lines: list[bytes]) -> list[bytes]:
    header = json.loads(lines[0])
    header["namespace"] = "default"
    lines[0] = (json.dumps(header) + "\n").encode()
    return lines


DAMAGE: dict[str, tuple[Callable[[list[bytes]], list[bytes]], str]] = {
    "cut at a line": (lambda lines: lines[: len(lines) // 2], "ends without its trailer: it was cut short"),
    "cut in a line": (
        lambda lines: [*lines[:10], lines[10][:7]],
        "line 11 is not a JSON object (the file was cut short or edited)",
    ),
    "a row edited": (_edit_value, "the artifact_property rows do not match the trailer's SHA-256 digest"),
    "a row dropped, counts fixed": (_edit_and_fix_counts, "the event rows do not match the trailer's SHA-256 digest"),
    "a row dropped": (
        lambda lines: [line for line in lines if json.loads(line).get("t") != "parent_context"],
        "0 parent_context rows, the trailer says 5 (the file was cut short or edited)",
    ),
    "header edited": (_edit_header, "the header does not match the trailer's digest of it"),
    "rows out of order": (
        lambda lines: [lines[0], *reversed(lines[1:-1]), lines[-1]],
        "rows after later sections",
    ),
    "not an archive": (lambda lines: [b'{"hello": "world"}\n'], "is not a LineageDB archive"),
    "rows after the trailer": (lambda lines: [*lines, lines[5]], "rows after the trailer"),
    "an unknown section": (
        lambda lines: [lines[0], b'{"t":"secrets","x":1}\n', *lines[1:]],
        "line 2: unknown section 'secrets'",
    ),
}


@pytest.fixture
def archive_file(store: MetadataStore, database_url: str, tmp_path: Path) -> Path:
    write_varied_store(store)
    path = tmp_path / "store.jsonl.gz"
    export(database_url, path)
    return path


def _row_count(url: str) -> int:
    engine = sa.create_engine(url)
    schema = schema_for(engine.dialect.name)
    try:
        with engine.connect() as connection:
            names = set(sa.inspect(connection).get_table_names())
            return sum(
                int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in (archive.table_for(schema, section.tag) for section in archive.STORED_SECTIONS)
                if table.name in names
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_archive_is_refused_and_nothing_is_imported(
    archive_file: Path, other_backend: str, tmp_path: Path, damage: str
) -> None:
    change, message = DAMAGE[damage]
    _rewrite(archive_file, change(_lines(archive_file)))
    with scratch_store(other_backend, tmp_path / "target") as target:
        before = _row_count(target.url)
        with pytest.raises(errors.InvalidArgumentError) as refused:
            import_(target.url, archive_file)
        assert message in refused.value.message
        assert refused.value.message.startswith("not a usable archive: ")
        assert _row_count(target.url) == before
        # verify reads the file first and refuses it the same way.
        with pytest.raises(errors.InvalidArgumentError) as refused_verify:
            verify(target.url, archive_file)
        assert message in refused_verify.value.message


def test_a_truncated_gzip_stream_is_refused(archive_file: Path, tmp_path: Path) -> None:
    data = archive_file.read_bytes()
    archive_file.write_bytes(data[: len(data) * 2 // 3])
    with scratch_store("sqlite", tmp_path / "target") as target, pytest.raises(errors.InvalidArgumentError) as refused:
        import_(target.url, archive_file)
    assert "is truncated or not gzip-compressed" in refused.value.message


def test_a_newer_format_version_is_refused(archive_file: Path, tmp_path: Path) -> None:
    lines = _lines(archive_file)
    header = json.loads(lines[0])
    header["version"] = archive.VERSION + 1
    lines[0] = (json.dumps(header) + "\n").encode()
    _rewrite(archive_file, lines)
    with (
        scratch_store("sqlite", tmp_path / "target") as target,
        pytest.raises(errors.FailedPreconditionError) as refused,
    ):
        import_(target.url, archive_file)
    assert (
        f"is archive format version {archive.VERSION + 1}; this LineageDB reads version {archive.VERSION} "
        "and older: upgrade LineageDB"
    ) in refused.value.message


def test_a_file_changed_between_check_and_import_rolls_back(
    archive_file: Path, other_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Import reads the archive twice; the second read checks it again, inside the transaction."""
    good = _lines(archive_file)
    original_check = archive.ArchiveReader.check

    def check_then_damage(self: archive.ArchiveReader) -> archive.ArchiveStats:
        stats = original_check(self)
        _rewrite(archive_file, _edit_value(list(good)))
        return stats

    monkeypatch.setattr(archive.ArchiveReader, "check", check_then_damage)
    with scratch_store(other_backend, tmp_path / "target") as target:
        before = _row_count(target.url)
        with pytest.raises(errors.InvalidArgumentError, match="do not match the trailer's SHA-256 digest"):
            import_(target.url, archive_file)
        assert _row_count(target.url) == before

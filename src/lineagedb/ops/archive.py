"""`lineagedb export`, `lineagedb import` and `lineagedb export verify`: a store, or one
namespace, moved between databases (SQLite, PostgreSQL, MySQL/MariaDB) or kept as a backup.

    lineagedb export --database URL OUT [--namespace NS] [--force]
    lineagedb import --database URL IN [--encryption-keys-file FILE]
    lineagedb export verify --database URL ARCHIVE

The archive format, and what an import keeps and remaps, are store.archive's (its module
doc). Here: opening the database, the snapshot an export reads in, the two passes of an
import (check the whole file, then import it in one transaction), progress on stderr
every few seconds, and the summary on stdout with rows per second.

Exit codes: 0 done (verify: equal), 1 verify found differences, 2 a bad archive, a
refused import or a usage error (nothing imported), 3 the database cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lineagedb import errors
from lineagedb.config import ConfigurationError, default_database_url, env
from lineagedb.ops.database import password_from_environment, redacted, with_password
from lineagedb.store import archive
from lineagedb.store.archive_selection import Selection, header_extra, is_partial, selection_rows
from lineagedb.store.bootstrap import SCHEMA_VERSION, inspect_schema, prepare_database
from lineagedb.store.encryption import Keyring
from lineagedb.store.engine import PoolSettings, create_engine
from lineagedb.store.tenancy import DEFAULT_NAMESPACE, NAMESPACES, check_namespace_name
from lineagedb.store.unit_of_work import Database

EXIT_DIFFERENT = 1
PROGRESS_EVERY_S = 2.0


def add_parser(sub: Any) -> None:
    export = sub.add_parser(
        "export",
        help="write the store, or one namespace, to an archive; `export verify` compares one with a database",
        description="Write the whole store (or one namespace) to OUT, a gzip-compressed JSON Lines archive "
        "(see the README, 'Export and import'). `lineagedb export verify --database URL ARCHIVE` "
        "recomputes the archive's counts and SHA-256 digests from the database and compares them.",
        usage="lineagedb export [--database URL] [--namespace NS] [--force] OUT\n"
        "       lineagedb export verify [--database URL] ARCHIVE",
    )
    _export_options(export)
    # `export OUT` and `export verify ARCHIVE` share the command, and options may come
    # anywhere among them: the words are parsed again in run() (argparse cannot mix an
    # optional sub-command with a positional).
    export.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    load = sub.add_parser(
        "import",
        help="load an archive written by `lineagedb export` into a database (one transaction)",
        description="Load IN into the database: ids are kept where they are free and remapped "
        "consistently where not; types the database has already must be identical. Nothing is "
        "imported unless all of it is.",
    )
    load.add_argument("archive", metavar="IN", help="the archive file")
    load.add_argument("--database", default=None, help="SQLAlchemy URL (default: the embedded SQLite file)")
    load.add_argument(
        "--encryption-keys-file",
        default=env("ENCRYPTION_KEYS_FILE"),
        metavar="FILE",
        help="the servers' key file; needed only when nodes holding encrypted values get new ids "
        "(or the keys in LINEAGEDB_ENCRYPTION_KEYS)",
    )


def _export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: the embedded SQLite file)")
    parser.add_argument("--namespace", default=None, help="export only this namespace's nodes (and their types)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")


def _export_words(args: argparse.Namespace) -> argparse.Namespace:
    """The export command's words (OUT, or verify ARCHIVE) with the options among them."""
    parser = argparse.ArgumentParser(prog="lineagedb export", add_help=False)
    _export_options(parser)
    parser.add_argument("paths", nargs="*")
    try:
        words = parser.parse_intermixed_args(args.words)
    except SystemExit:
        raise ConfigurationError("usage: lineagedb export [--database URL] [--namespace NS] OUT") from None
    for name in ("database", "namespace"):
        if getattr(words, name) is None:
            setattr(words, name, getattr(args, name))
    words.force = words.force or args.force
    return words


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    if args.command == "import":
        import_archive(args.database, Path(args.archive), args.encryption_keys_file, out, err)
        return 0
    words = _export_words(args)
    paths = words.paths
    if paths and paths[0] == "verify":
        if len(paths) != 2 or words.namespace is not None or words.force:
            raise ConfigurationError("usage: lineagedb export verify [--database URL] ARCHIVE")
        return 0 if verify_archive(words.database, Path(paths[1]), out, err) else EXIT_DIFFERENT
    if len(paths) != 1:
        raise ConfigurationError("usage: lineagedb export [--database URL] [--namespace NS] [--force] OUT")
    export_archive(words.database, Path(paths[0]), words.namespace, words.force, out, err)
    return 0


# -- shared ---------------------------------------------------------------------------------------


def _engine(url: str | None) -> sa.Engine:
    parsed = make_url(url or env("DATABASE_URL") or default_database_url())
    return create_engine(with_password(parsed, password_from_environment(None)), PoolSettings(size=2))


class _Progress:
    """A line on stderr every PROGRESS_EVERY_S seconds: rows so far and the section."""

    def __init__(self, verb: str, err: TextIO) -> None:
        self.verb = verb
        self.err = err
        self.started = time.monotonic()
        self._last = self.started

    def __call__(self, tag: str, rows: int) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S:
            self._last = now
            rate = rows / max(now - self.started, 1e-9)
            self.err.write(f"  {self.verb} {rows:,} rows ({tag}), {rate:,.0f} rows/s\n")
            self.err.flush()

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)


@contextlib.contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read transaction that sees one point in time for all its statements: REPEATABLE READ
    on PostgreSQL and MySQL, a read transaction on SQLite (WAL keeps its snapshot)."""
    with engine.connect() as connection:
        connection.info["lineagedb_write"] = False  # SQLite: a deferred BEGIN, no write lock
        if engine.dialect.name != "sqlite":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def _check_source(connection: sa.Connection, url_text: str, namespace: str | None) -> None:
    state = inspect_schema(connection)
    if state.mlmd_version != SCHEMA_VERSION or state.missing_tables:
        raise errors.FailedPreconditionError(
            f"{url_text} does not hold an MLMD schema v{SCHEMA_VERSION} store (as LineageDB or MLMD create it)"
        )
    if namespace is not None and not state.has_namespaces:
        raise errors.FailedPreconditionError(
            f"{url_text} has no namespace tables yet (every node is in {DEFAULT_NAMESPACE!r}): "
            "export the whole store, or run `lineagedb db upgrade` first"
        )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{tag} {count:,}" for tag, count in counts.items() if count) or "no rows"


# -- export ---------------------------------------------------------------------------------------


def export_archive(
    url: str | None, out_path: Path, namespace: str | None, force: bool, out: TextIO, err: TextIO
) -> dict[str, Any]:
    """Write the archive; returns its trailer. Written to OUT.partial first, renamed when
    complete, so a failed export never leaves a file that looks like an archive."""
    if out_path.exists() and not force:
        raise errors.AlreadyExistsError(f"{out_path} exists; give --force to replace it")
    if namespace is not None:
        check_namespace_name(namespace)
    engine = _engine(url)
    url_text = redacted(engine.url)
    progress = _Progress("exported", err)
    try:
        with snapshot(engine) as connection:
            _check_source(connection, url_text, namespace)
            if namespace not in (None, DEFAULT_NAMESPACE):
                found = connection.execute(sa.select(NAMESPACES.c.name).where(NAMESPACES.c.name == namespace)).first()
                if found is None:
                    raise errors.NotFoundError(f"namespace {namespace!r} does not exist in {url_text}")
            now_ms = int(time.time() * 1000)
            scope = archive.Scope(namespace)
            trailer = _write_file(
                out_path, lambda file: archive.write_archive(connection, file, scope, now_ms, progress)[1]
            )
    finally:
        engine.dispose()
    seconds = progress.elapsed()
    rows = int(trailer["rows"])
    what = f"namespace {namespace}" if namespace is not None else "the whole store"
    out.write(
        f"exported {what} of {url_text} to {out_path}: {rows:,} rows, {out_path.stat().st_size:,} bytes, "
        f"in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)\n"
    )
    out.write(f"  {_counts(trailer['counts'])}\n")
    return trailer


def _write_file(out_path: Path, write: Callable[[IO[bytes]], dict[str, Any]]) -> dict[str, Any]:
    """Run `write` on OUT.partial, synced to disk, then renamed to OUT: a failed write never
    leaves a file that looks like an archive. Returns what `write` returned (the trailer)."""
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        with open(partial, "wb") as file:
            trailer = write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, out_path)
    except OSError as error:
        raise errors.FailedPreconditionError(f"cannot write {out_path}: {error.strerror or error}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return trailer


def archive_selection(
    engine: sa.Engine, selection: Selection, out_path: Path, purpose: dict[str, Any], err: TextIO
) -> dict[str, Any]:
    """Write the archive of the selected nodes (store.archive_selection) from one snapshot;
    returns its trailer."""
    progress = _Progress("archived", err)
    with snapshot(engine) as connection:
        header = archive.header_for(
            connection, archive.Scope(), int(time.time() * 1000), header_extra(selection, purpose)
        )
        rows = selection_rows(connection, selection)
        return _write_file(out_path, lambda file: archive.write_rows(file, header, rows, progress))


# -- import ---------------------------------------------------------------------------------------


def _keyring(keys_file: str | None) -> Keyring | None:
    from lineagedb.security.encryption import EncryptionConfigError, load_key_provider

    try:
        provider = load_key_provider(keys_file, os.environ)
        return Keyring(provider) if provider is not None else None
    except (EncryptionConfigError, ValueError) as error:
        raise ConfigurationError(str(error)) from None


def import_archive(
    url: str | None, path: Path, keys_file: str | None, out: TextIO, err: TextIO
) -> archive.ImportReport:
    """Check the whole archive, then import it in one transaction (all or nothing)."""
    stats = archive.ArchiveReader(path).check()
    keyring = _keyring(keys_file)
    engine = _engine(url)
    url_text = redacted(engine.url)
    progress = _Progress("imported", err)
    try:
        prepare_database(engine)
        database = Database(engine)
        # Exclusive: in-flight writers finish first and new ones wait, so no id this import
        # found free is taken before it commits.
        with database.transaction(write=True, exclusive=True) as uow:
            importer = archive.Importer(uow, stats.max_ids, keyring, progress, partial=is_partial(stats.header))
            for section, row in archive.ArchiveReader(path).records():  # checked again as it is read
                importer.add(section, row)
            report = importer.finish()
        database.statistics.wait(timeout=60)
    finally:
        engine.dispose()
    seconds = progress.elapsed()
    out.write(
        f"imported {path} into {url_text}: {report.total:,} rows in {seconds:.1f} s "
        f"({report.total / seconds:,.0f} rows/s)\n"
    )
    out.write(f"  {_counts(report.rows)}\n")
    remapped = {tag: count for tag, count in report.remapped.items() if count}
    out.write(f"  ids remapped: {report.total_remapped:,}" + (f" ({_counts(remapped)})" if remapped else "") + "\n")
    if report.reused_types:
        out.write(f"  types already in the database (identical, used as they are): {report.reused_types}\n")
    if report.existing_namespaces:
        out.write(f"  namespaces already in the database: {report.existing_namespaces}\n")
    if report.existing_keys:
        out.write(f"  encryption keys already registered: {report.existing_keys}\n")
    if report.rebound_envelopes:
        out.write(f"  encrypted values re-encrypted for their new ids: {report.rebound_envelopes}\n")
    return report


# -- verify ---------------------------------------------------------------------------------------


def verify_archive(url: str | None, path: Path, out: TextIO, err: TextIO) -> bool:
    """Compare the archive's trailer with counts and digests computed from the database now
    (for the archive's scope). True when every section is equal."""
    stats = archive.ArchiveReader(path).check()
    if is_partial(stats.header):
        raise errors.FailedPreconditionError(
            f"{path} holds nodes chosen for deletion (a retention archive), not a store or a namespace: "
            "there is nothing in a database to verify it against; import it to restore them"
        )
    namespace = stats.header.get("namespace")
    engine = _engine(url)
    url_text = redacted(engine.url)
    progress = _Progress("read", err)
    try:
        with snapshot(engine) as connection:
            _check_source(connection, url_text, namespace)
            tally = archive.tally_database(connection, archive.Scope(namespace), progress)
    finally:
        engine.dispose()
    counts = {tag: int(stats.trailer["counts"].get(tag, 0)) for tag in archive.BY_TAG}
    digests = stats.trailer["sha256"]
    found = tally.digests()
    different = []
    what = f"namespace {namespace}" if namespace is not None else "the whole store"
    out.write(f"{path} ({what}) against {url_text}:\n")
    out.write(f"  {'section':<20} {'archive':>12} {'database':>12}\n")
    for section in archive.SECTIONS:
        tag = section.tag
        equal = counts[tag] == tally.counts[tag] and digests[tag] == found[tag]
        if not equal:
            different.append(tag)
        if counts[tag] or tally.counts[tag]:
            verdict = (
                "equal"
                if equal
                else "DIFFERENT" + (" (same count, other content)" if counts[tag] == tally.counts[tag] else "")
            )
            out.write(f"  {tag:<20} {counts[tag]:>12,} {tally.counts[tag]:>12,}  {verdict}\n")
    if different:
        count = "1 section differs" if len(different) == 1 else f"{len(different)} sections differ"
        out.write(f"different: {count} ({', '.join(different)})\n")
        return False
    out.write("equal: the database holds exactly the archive's rows (counts and SHA-256 digests)\n")
    return True

"""`lineagedb track flush|pending`: the journal of lineagedb.track (steps recorded while the
store could not be reached, or refused) sent to the store, or listed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_REMAINING = 1
EXIT_CONFIG = 2


def add_parser(sub: Any) -> None:
    track = sub.add_parser("track", help="lineagedb.track's journal: send (flush) or list (pending) kept steps")
    add_subcommands(track)


def add_subcommands(track: argparse.ArgumentParser) -> None:
    """`flush` and `pending` under `lineagedb track`, or under `python -m lineagedb.track`
    (which runs without the server's dependencies)."""
    track_sub = track.add_subparsers(dest="track_command", required=True)
    flush = track_sub.add_parser(
        "flush",
        help="send the journalled steps to the store, oldest first; each is written once even if sent twice",
    )
    pending = track_sub.add_parser("pending", help="list the journalled steps")
    for command in (flush, pending):
        command.add_argument(
            "--dir",
            default=None,
            metavar="DIR",
            help="lineagedb.track's directory (its journal is DIR/journal) [env LINEAGEDB_TRACK_DIR; "
            "default $XDG_CACHE_HOME/lineagedb or ~/.cache/lineagedb]",
        )
    flush.add_argument("--target", default=None, metavar="HOST:PORT", help="the server [env LINEAGEDB_TARGET]")
    flush.add_argument("--namespace", default=None, help="namespace to write in [env LINEAGEDB_NAMESPACE]")
    flush.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="write into this database directly (embedded, no server) [env LINEAGEDB_DATABASE_URL when no target]",
    )
    flush.add_argument(
        "--tls-ca", default=None, metavar="FILE", help="CA verifying the server (PEM) [env LINEAGEDB_TRACK_TLS_CA]"
    )
    flush.add_argument(
        "--tls-cert",
        default=None,
        metavar="FILE",
        help="client certificate for mTLS (PEM) [env LINEAGEDB_TRACK_TLS_CERT]",
    )
    flush.add_argument(
        "--tls-key",
        default=None,
        metavar="FILE",
        help="client private key for mTLS (PEM) [env LINEAGEDB_TRACK_TLS_KEY]",
    )
    # The token comes only from LINEAGEDB_TOKEN: a command line is readable by other users (ps).


def run(args: argparse.Namespace) -> int:
    from lineagedb.track import TrackConfigurationError, Tracker
    from lineagedb.track.journal import Journal
    from lineagedb.track.settings import resolve

    try:
        settings = resolve(
            target=getattr(args, "target", None),
            namespace=getattr(args, "namespace", None),
            database_url=getattr(args, "database", None),
            directory=args.dir,
            tls_ca=getattr(args, "tls_ca", None),
            tls_cert=getattr(args, "tls_cert", None),
            tls_key=getattr(args, "tls_key", None),
        )
    except TrackConfigurationError as error:
        print(f"lineagedb: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.track_command == "pending":
        journal = Journal(settings.journal_dir)
        paths = journal.pending()
        for path in paths:
            try:
                record = Journal.read(path)
                where = f"{record.pipeline or '-'}  {record.run}"
                print(f"{record.step_id}  {record.status:8}  {where}  {record.step_name}")
            except (OSError, ValueError, TypeError) as error:
                print(f"{path.name}  unreadable: {error}")
        print(f"pending: {len(paths)} in {settings.journal_dir}")
        return 0
    tracker = Tracker(settings)
    if not tracker.configured:
        print("lineagedb: no store to flush to: give --target or --database (or set LINEAGEDB_TARGET)", file=sys.stderr)
        tracker.close()
        return EXIT_CONFIG
    try:
        report = tracker.flush()
    except TrackConfigurationError as error:
        print(f"lineagedb: {error}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        tracker.close()
    for kept, reason in report.failed:
        print(f"kept {kept}: {reason}", file=sys.stderr)
    print(
        f"sent: {len(report.sent)}; already in the store: {len(report.already)}; kept: {report.remaining}"
        + (f" ({tracker.describe_store()} cannot be reached)" if report.unreachable else "")
    )
    return EXIT_REMAINING if report.remaining else 0

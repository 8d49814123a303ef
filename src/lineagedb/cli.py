"""Command line: `lineagedb serve` and `lineagedb db upgrade|current`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from lineagedb import errors
from lineagedb.config import Settings, default_database_url, env


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lineagedb", description="ML metadata and lineage store (MLMD-compatible).")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", default=env("HOST", "0.0.0.0"), help="address to listen on (default 0.0.0.0)")
    serve.add_argument(
        "--port", type=int, default=int(env("PORT", "8080") or 8080), help="port (default 8080; 0 picks a free one)"
    )
    serve.add_argument(
        "--database",
        default=env("DATABASE_URL"),
        help="SQLAlchemy URL: sqlite:////abs/path.db, postgresql://user@host/db, mysql://user@host/db "
        "(default: lineagedb.sqlite in the working directory; env LINEAGEDB_DATABASE_URL)",
    )
    serve.add_argument("--workers-threads", dest="worker_threads", type=int, default=16, help="RPC threads")
    serve.add_argument(
        "--enable-database-upgrade",
        "--enable_database_upgrade",
        dest="enable_database_upgrade",
        nargs="?",
        const="true",
        default=env("ENABLE_DATABASE_UPGRADE", "false"),
        help="apply pending schema migrations at startup",
    )
    serve.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING or ERROR")

    db = sub.add_parser("db", help="schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("upgrade", "create or upgrade the schema"), ("current", "print the schema state")):
        cmd = db_sub.add_parser(name, help=text)
        cmd.add_argument("--database", default=env("DATABASE_URL"), help="SQLAlchemy URL")
    return parser


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    database = args.database or default_database_url()
    try:
        if args.command == "serve":
            from lineagedb.server import serve

            settings = Settings(
                host=args.host,
                port=args.port,
                database_url=database,
                worker_threads=args.worker_threads,
                enable_database_upgrade=_truthy(args.enable_database_upgrade),
                log_level=args.log_level,
            )
            return serve(settings)
        return _db_command(args.db_command, database)
    except errors.LineageError as error:
        print(f"lineagedb: {error.message}", file=sys.stderr)
        return 2


def _db_command(command: str, url: str) -> int:
    from lineagedb.store.bootstrap import inspect_schema, prepare_database
    from lineagedb.store.engine import create_engine

    engine = create_engine(url)
    try:
        if command == "upgrade":
            state = prepare_database(engine, allow_upgrade=True)
        else:
            with engine.connect() as connection:
                state = inspect_schema(connection)
        print(f"mlmd_schema_version={state.mlmd_version} revision={state.revision} head={state.head}")
        return 0
    finally:
        engine.dispose()

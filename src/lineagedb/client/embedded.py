"""Embedded mode: LineageDB's own store in this process, no server.

The calls go to the very servicer the server registers (`MetadataStoreServicer` over the
service layer's `MetadataStore`), so validation, transactions and answers are the server's.
What a server adds around it and an embedded store has no use for is left out: authentication
and namespaces (the process owns the database), the audit log and metrics. A call's timeout
bounds its database statements on PostgreSQL and MariaDB as a server's deadline does. Errors
become the same `lineagedb.client.errors` classes, with the status a server would answer and
the same message.

Needs the server's dependencies (`pip install 'lineagedb[server]'`): SQLAlchemy and the
database drivers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from lineagedb import errors as domain_errors
from lineagedb.api.servicer import MetadataStoreServicer
from lineagedb.api.status import MAX_DETAILS_CHARS, status_for
from lineagedb.client import errors
from lineagedb.config import ConfigurationError
from lineagedb.ops.database import ensure_database_exists, parse_url, redacted
from lineagedb.ops.encryption import check_database as check_encryption
from lineagedb.ops.mlmd_flags import mysql_url, postgresql_url, sqlite_url
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.service.metadata_store import MetadataStore as StoreService
from lineagedb.store.bootstrap import prepare_database
from lineagedb.store.engine import STATEMENT_DEADLINE, create_engine
from lineagedb.store.unit_of_work import Database

log = logging.getLogger(__name__)


def connection_url(config: mlmd.ConnectionConfig) -> tuple[URL, bool]:
    """The SQLAlchemy URL of an MLMD ConnectionConfig, and whether to create a missing database."""
    kind = config.WhichOneof("config")
    if kind == "sqlite":
        return sqlite_url(config.sqlite), False
    if kind == "fake_database":
        return URL.create("sqlite"), False  # MLMD's fake database is in memory too
    if kind == "mysql":
        return mysql_url(config.mysql), not config.mysql.skip_db_creation
    if kind == "postgresql":
        return postgresql_url(config.postgresql), not config.postgresql.skip_db_creation
    # The official client raises RuntimeError for a config without a backend.
    raise RuntimeError("ConnectionConfig names no database: set one of sqlite, mysql, postgresql, fake_database")


class EmbeddedTransport:
    """Runs each call through the server's servicer in this process."""

    def __init__(self, config: mlmd.ConnectionConfig | str, enable_upgrade_migration: bool = False) -> None:
        try:
            if isinstance(config, str):
                url, create = parse_url(config), False
            else:
                url, create = connection_url(config)
            if create:
                ensure_database_exists(url)
            engine = create_engine(url)
        except ConfigurationError as error:
            raise RuntimeError(str(error)) from error
        except (sa_exc.SQLAlchemyError, ImportError) as error:
            raise RuntimeError(f"cannot use the database at {redacted(url)}: {type(error).__name__}") from error
        try:
            state = prepare_database(engine, allow_upgrade=enable_upgrade_migration)
            # Keys are a server setting: a database with encrypted values is refused, as a
            # server without its keys refuses it (never written in plaintext beside them).
            check_encryption(engine, state, None)
        except domain_errors.LineageError as error:
            engine.dispose()
            raise RuntimeError(error.message) from error
        except sa_exc.SQLAlchemyError as error:
            engine.dispose()
            raise RuntimeError(f"cannot prepare the database at {redacted(url)}: {type(error).__name__}") from error
        self._database = Database(engine)
        self._servicer = MetadataStoreServicer(StoreService(self._database))

    def call(self, method: str, request: Any, timeout: float | None) -> Any:
        handler = getattr(self._servicer, method)
        deadline: float | None = None
        if timeout is not None:
            if timeout <= 0:
                raise errors.make_exception("the deadline passed before the call started", errors.DEADLINE_EXCEEDED)
            deadline = time.monotonic() + timeout
        token = STATEMENT_DEADLINE.set(deadline)
        try:
            # The servicer's methods ignore their context (they delegate to the service layer).
            return handler(request, _NO_CONTEXT)
        except domain_errors.LineageError as error:
            code = status_for(error)
            if code is grpc.StatusCode.INTERNAL:
                log.error("%s failed: %s", method, error.message, exc_info=error.__cause__ is not None)
            raise errors.make_exception(_details(error.message), code.value[0]) from None
        except UnicodeDecodeError:
            raise errors.make_exception(
                "the request contains text that is not valid UTF-8", errors.INVALID_ARGUMENT
            ) from None
        finally:
            STATEMENT_DEADLINE.reset(token)

    def close(self) -> None:
        self._database.dispose()


# The message cap a server applies (lineagedb.api.status), so answers read the same both ways.
def _details(message: str) -> str:
    if len(message) <= MAX_DETAILS_CHARS:
        return message
    return message[: MAX_DETAILS_CHARS - 16] + " ... (truncated)"


_NO_CONTEXT: Any = None

"""grpc.health.v1 backed by the database: SERVING only while the database answers.

A background thread prepares the schema (retrying while the database is down at
startup) and then pings the database every `interval_s`. The health status of the
empty service name and of `ml_metadata.MetadataStoreService` follows the pings;
on shutdown it turns NOT_SERVING for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures

import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.store import db_tls
from lineagedb.store.engine import is_sqlite_memory
from lineagedb.store.unit_of_work import classify_driver_error

log = logging.getLogger(__name__)

METADATA_SERVICE = "ml_metadata.MetadataStoreService"
SERVICE_NAMES = ("", METADATA_SERVICE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 2.0
FATAL_RETRY_DELAY_S = 1.0
TLS_FAILURE = (
    "TLS to the database failed: check the CA that verifies the server (sslrootcert / ssl_ca), "
    "the host name in the URL, and the client certificate and key"
)


class TransientDatabaseError(Exception):
    """The database cannot be reached now; trying again later may work."""


class DatabaseTlsError(errors.FailedPreconditionError):
    """TLS to the database failed on a certificate or its setup: trying again does not help."""


def classify_startup_error(error: BaseException) -> BaseException:
    """Transient (database down, schema being initialized elsewhere) or fatal (anything else)."""
    domain: BaseException = error
    if isinstance(error, sa_exc.TimeoutError):
        return TransientDatabaseError("the connection pool timed out")
    if isinstance(error, sa_exc.DBAPIError):
        if db_tls.is_tls_failure(error):
            # A certificate that does not verify stays so: retrying in the background would
            # only hide a misconfiguration (or someone in the middle) behind NOT_SERVING.
            return DatabaseTlsError(TLS_FAILURE)
        domain = classify_driver_error(error)
    if isinstance(domain, errors.UnavailableError | errors.AbortedError):
        return TransientDatabaseError(_first_line(error))
    return domain


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def describe(error: BaseException) -> str:
    """A one-line description for logs and exit messages (driver text carries no passwords)."""
    if isinstance(error, errors.LineageError):
        message = error.message
        cause = error.__cause__
        if cause is not None and getattr(cause, "orig", None) is not None:
            message = f"{message} ({_first_line(cause)})"
        return message
    return _first_line(error)


class DatabaseSupervisor:
    """Prepares the database (in the background if it is down) and drives the health status."""

    def __init__(
        self,
        engine: sa.Engine,
        prepare: Callable[[], object],
        interval_s: float = 1.0,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.engine = engine
        self._prepare = prepare
        self.interval_s = interval_s
        self._on_fatal = on_fatal
        self.ready = threading.Event()  # the schema has been prepared
        self.healthy = False
        self._shutting_down = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.servicer = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
        )
        for name in SERVICE_NAMES:
            self.servicer.set(name, NOT_SERVING)
        self.became_ready_at: float | None = None

    # -- preparing -----------------------------------------------------------------

    def try_prepare(self) -> bool:
        """Prepare once. True when ready, False on a transient failure; raises on a fatal one."""
        for attempt in range(2):
            try:
                self._prepare()
                break
            except Exception as error:
                classified = classify_startup_error(error)
                if isinstance(classified, TransientDatabaseError):
                    log.warning("database not available yet: %s", classified)
                    return False
                if attempt == 0 and not isinstance(classified, DatabaseTlsError):
                    # Another server (or worker) initializing the same empty database makes our
                    # attempt fail once; a second look then finds a complete schema.
                    log.warning("preparing the database failed (%s); trying once more", describe(classified))
                    time.sleep(FATAL_RETRY_DELAY_S)
                    continue
                if classified is error:
                    raise
                raise classified from error
        self.ready.set()
        self.became_ready_at = time.monotonic()
        self._set_health(True)
        return True

    def prepare_with_retries(self, attempts: int) -> bool:
        delay = FIRST_BACKOFF_S
        for attempt in range(max(1, attempts)):
            if attempt:
                time.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            if self.try_prepare():
                return True
        return False

    # -- the background loop -------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="db-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = FIRST_BACKOFF_S
        while not self._stop.is_set():
            if not self.ready.is_set():
                try:
                    if self.try_prepare():
                        log.info("database ready")
                        delay = FIRST_BACKOFF_S
                    else:
                        self._stop.wait(delay)
                        delay = min(delay * 2, MAX_BACKOFF_S)
                        continue
                except Exception as error:
                    log.error("cannot prepare the database: %s", describe(error))
                    if self._on_fatal is not None:
                        self._on_fatal(error)
                    return
            else:
                self._set_health(self.ping())
            self._stop.wait(self.interval_s)

    def ping(self) -> bool:
        if is_sqlite_memory(self.engine.url):
            # The database lives in this process, on the one connection every call shares
            # (StaticPool): nothing to reach, and a checkout from this thread would roll back
            # (on its return to the pool) whatever transaction a call had open on it.
            return True
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except Exception as error:
            if self.healthy:
                log.warning("database ping failed: %s", _first_line(error))
            return False

    def _set_health(self, healthy: bool) -> None:
        with self._lock:
            if self._shutting_down:
                return
            if healthy != self.healthy:
                log.info("health: %s", "SERVING" if healthy else "NOT_SERVING")
            self.healthy = healthy
            for name in SERVICE_NAMES:
                self.servicer.set(name, SERVING if healthy else NOT_SERVING)

    def shutdown(self) -> None:
        """NOT_SERVING for good, and stop pinging."""
        with self._lock:
            self._shutting_down = True
            self.healthy = False
            self.servicer.enter_graceful_shutdown()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

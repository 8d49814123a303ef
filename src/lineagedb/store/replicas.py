"""PostgreSQL read replicas: which database a read-only call reads, and what a write leaves behind.

Off unless `--read-database` names streaming replicas (lineagedb.ops.read_replicas builds
a `ReplicaSet`; lineagedb.api.read_routing puts a `CallRoute` in `CURRENT_ROUTE` for each
call). `Database.transaction` (store.unit_of_work) asks the route for the engine of a
read transaction and hands it the commit position of a write transaction.

Positions are WAL LSNs as integers (bytes since the start of the WAL). What is guaranteed:

* Read your writes. A write call learns, with its COMMIT and in the same round trip, an LSN
  at or past the end of its commit record (`commit_lsn_sql`). A later read that carries it
  (the client echoes `lineagedb-lsn`, or the server remembers it for the caller's address)
  goes to a replica only if that replica's last known replay position is at or past it.
  Replay positions only grow, so a cached one is a safe lower bound.
* Bounded staleness for every read. Every REFRESH_S the monitor samples the primary's
  flushed WAL position and each replica's replay position. A replica that has replayed the
  primary's position sampled at time t holds everything committed on the primary before t.
  It serves reads only while now - t <= max lag; otherwise, or when it is down, not a
  standby, or slow to answer, the primary serves the read. The caller never sees an error
  for it: a read that failed on a replica runs again on the primary.

The caller-address table (for clients that echo nothing, such as the official ml-metadata
client) drops an entry once every replica allowed to serve reads must have replayed it (its
LSN is at or below the position the primary had `max lag` ago), and folds entries beyond
MAX_PEERS into one floor that applies to every such caller, so it stays bounded without ever
forgetting a write too early.
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent import futures
from contextvars import ContextVar
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

# Seconds between samples of the primary's WAL position and the replicas' replay positions.
REFRESH_S = 0.25
# A read sent to the primary because no replica had replayed its caller's write asks for an
# early round, at most this often: a client's reads return to a replica moments after its write.
MIN_REFRESH_S = 0.02
# A replica that failed (connection refused, lost, timed out) is probed again after this long,
# doubling up to RETRY_MAX_S while it keeps failing.
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0
# Caller addresses remembered for clients that do not carry their own write position.
MAX_PEERS = 10_000
# A replica whose probe has not answered within this long is set aside like a failed one (its
# probe may hang on a host that stopped answering; the other replicas are probed meanwhile).
PROBE_TIMEOUT_S = 2.0

# The end of this session's commit record, or a position past it: with synchronous_commit
# off the commit may not be flushed yet, so the insert position is taken instead.
COMMIT_LSN_SQL = (
    "SELECT (CASE WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn() "
    "ELSE pg_current_wal_flush_lsn() END) - '0/0'::pg_lsn"
)
PRIMARY_LSN_SQL = "SELECT pg_current_wal_flush_lsn() - '0/0'::pg_lsn"
REPLICA_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn"

# Why a read went to the primary.
NO_REPLICA_UP = "replica_down"
LAGGING = "replica_lagging"
BEHIND_CALLER = "behind_caller_write"
REPLICA_FAILED = "replica_failed_in_call"
PRIMARY = "primary"


def format_lsn(lsn: int) -> str:
    """PostgreSQL's spelling of an LSN (for logs)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass
class Replica:
    """One streaming replica: its engine and what the monitor last learned about it."""

    name: str  # host:port/database, never credentials
    engine: sa.Engine
    replay_lsn: int = -1
    # time.monotonic() of the latest primary sample this replica has replayed: it holds every
    # commit the primary had flushed then. None: older than every sample kept, or unknown.
    fresh_as_of: float | None = None
    lag_s: float | None = None  # seconds behind the primary at the last probe (metric)
    behind_bytes: int | None = None
    up: bool = False
    standby: bool = True
    failures: int = 0
    retry_at: float = 0.0
    reads: int = 0
    probing: futures.Future[None] | None = None


@dataclass
class CallRoute:
    """The routing state of one call (CURRENT_ROUTE): the write position a read must see,
    the database chosen for its reads, the commit position of its writes."""

    replicas: ReplicaSet
    min_lsn: int = 0
    read_only: bool = False
    primary_only: bool = False
    reason: str | None = None  # why the primary serves this read, if it does
    replica: Replica | None = None
    chosen: bool = False
    commit_lsn: int | None = None

    def read_engine(self, primary: sa.Engine) -> sa.Engine:
        """The engine of this call's read transactions (the same one for every transaction)."""
        if not self.read_only:
            return primary
        if not self.chosen:
            self.chosen = True
            if self.primary_only:
                self.replicas.count_primary(self.reason or REPLICA_FAILED)
            else:
                self.replica, self.reason = self.replicas.choose(self.min_lsn)
        return self.replica.engine if self.replica is not None else primary

    def connect_failed(self, error: BaseException) -> None:
        """The chosen replica refused a connection: this call reads the primary instead."""
        if self.replica is not None:
            self.replicas.mark_failed(self.replica, error)
            self.replica = None
            self.reason = REPLICA_FAILED
            self.replicas.count_primary(REPLICA_FAILED)

    def committed(self, lsn: int | None) -> None:
        if lsn is not None:
            self.commit_lsn = lsn if self.commit_lsn is None else max(self.commit_lsn, lsn)


CURRENT_ROUTE: ContextVar[CallRoute | None] = ContextVar("lineagedb_call_route", default=None)


@dataclass
class _Peers:
    """Latest write LSN per caller address, for clients that do not send theirs."""

    entries: dict[str, int] = field(default_factory=dict)
    floor: int = 0  # entries folded away beyond MAX_PEERS: applies to every caller
    limit: int = MAX_PEERS


class ReplicaSet:
    """The replicas, their monitor thread, the caller-address table and the read counters."""

    def __init__(
        self,
        primary: sa.Engine,
        replicas: Iterable[Replica],
        max_lag_s: float,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.primary = primary
        self.replicas = list(replicas)
        self.max_lag_s = max_lag_s
        self.clock = clock
        self.refresh_s = refresh_s
        # (time.monotonic() just before the query, primary's flushed LSN): both only grow.
        window = max(2 * max_lag_s, 60.0)
        self._samples: deque[tuple[float, int]] = deque(maxlen=int(window / refresh_s) + 2)
        self._peers = _Peers()
        self._lock = threading.Lock()
        self.primary_reads: Counter[str] = Counter()
        self.failures = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._probes = futures.ThreadPoolExecutor(
            max_workers=max(1, len(self.replicas)), thread_name_prefix="replica-probe"
        )

    # ------------------------------------------------------------------ routing (per call)

    def choose(self, min_lsn: int) -> tuple[Replica | None, str | None]:
        """A replica fresh enough for this read, or (None, why the primary serves it)."""
        now = self.clock()
        candidates = []
        reason = NO_REPLICA_UP
        for replica in self.replicas:
            if not (replica.up and replica.standby):
                continue
            if replica.fresh_as_of is None or now - replica.fresh_as_of > self.max_lag_s:
                reason = LAGGING if reason == NO_REPLICA_UP else reason
                continue
            if replica.replay_lsn < min_lsn:
                reason = BEHIND_CALLER
                self._wake.set()
                continue
            candidates.append(replica)
        if not candidates:
            self.count_primary(reason)
            return None, reason
        replica = candidates[0] if len(candidates) == 1 else random.choice(candidates)
        with self._lock:
            replica.reads += 1
        return replica, None

    def count_primary(self, reason: str) -> None:
        with self._lock:
            self.primary_reads[reason] += 1

    def mark_failed(self, replica: Replica, error: BaseException | None) -> None:
        """Stop reading `replica` until a probe finds it answering again."""
        with self._lock:
            self.failures += 1
            was_up = replica.up
            replica.up = False
            replica.failures += 1
            delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(replica.failures - 1, 8))
            replica.retry_at = self.clock() + delay
        if was_up:
            # Its pooled connections are likely dead too (a restart): the next probe opens new ones.
            replica.engine.dispose()
            # The error's class only: driver messages may repeat connection parameters.
            log.warning(
                "read replica %s failed (%s); reads go to the primary, retrying in %.0fs",
                replica.name,
                type(error).__name__ if error is not None else "no answer",
                delay,
            )

    # ------------------------------------------------------------------ caller addresses

    def peer_lsn(self, peer: str) -> int:
        with self._lock:
            return max(self._peers.entries.get(peer, 0), self._peers.floor)

    def note_peer_write(self, peer: str, lsn: int) -> None:
        with self._lock:
            peers = self._peers
            previous = peers.entries.pop(peer, 0)
            peers.entries[peer] = max(previous, lsn)  # re-inserted: the newest entries come last
            while len(peers.entries) > peers.limit:
                oldest = next(iter(peers.entries))
                peers.floor = max(peers.floor, peers.entries.pop(oldest))

    def peers_remembered(self) -> int:
        with self._lock:
            return len(self._peers.entries)

    # ------------------------------------------------------------------ the monitor

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="read-replicas", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._probes.shutdown(wait=False, cancel_futures=True)
        for replica in self.replicas:
            replica.engine.dispose()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.refresh_s)
            if self._stop.wait(MIN_REFRESH_S):
                return
            self._wake.clear()
            try:
                self.refresh()
            except Exception:  # the monitor must outlive any surprise; the next round tries again
                log.exception("checking the read replicas failed")

    def refresh(self) -> None:
        """One round: the primary's position, then every replica's (set-based: one query each)."""
        sampled_at = self.clock()
        try:
            with self.primary.connect() as connection:
                lsn = int(connection.exec_driver_sql(PRIMARY_LSN_SQL).scalar_one())
        except sa_exc.SQLAlchemyError:
            # Without a fresh sample no replica can prove it is fresh: after max lag they stop serving.
            log.debug("sampling the primary's WAL position failed", exc_info=True)
        else:
            with self._lock:
                if not self._samples or lsn >= self._samples[-1][1]:
                    self._samples.append((sampled_at, lsn))
        started = []
        for replica in self.replicas:
            if replica.probing is not None and not replica.probing.done():
                continue  # still hanging since an earlier round: already set aside
            if not replica.up and self.clock() < replica.retry_at:
                continue
            replica.probing = self._probes.submit(self._probe, replica)
            started.append(replica)
        if started:
            futures.wait([replica.probing for replica in started if replica.probing], timeout=PROBE_TIMEOUT_S)
            for replica in started:
                if replica.probing is not None and not replica.probing.done():
                    self.mark_failed(replica, None)
        self._forget_replayed_peers()

    def _probe(self, replica: Replica) -> None:
        probed_at = self.clock()
        try:
            with replica.engine.connect() as connection:
                in_recovery, replay = connection.exec_driver_sql(REPLICA_SQL).one()
                connection.rollback()
        except sa_exc.SQLAlchemyError as error:
            self.mark_failed(replica, error)
            return
        if not in_recovery or replay is None:
            if replica.standby:
                log.error(
                    "read replica %s is not a standby in recovery (promoted, or the URL names a primary): "
                    "it serves no reads",
                    replica.name,
                )
            replica.standby = False
            replica.up = True
            return
        replay = int(replay)
        with self._lock:
            samples = list(self._samples)
            came_back = not replica.up
            replica.standby = True
            replica.up = True
            replica.failures = 0
            replica.replay_lsn = max(replica.replay_lsn, replay)
            replica.fresh_as_of, replica.lag_s, replica.behind_bytes = _freshness(
                samples, replica.replay_lsn, probed_at
            )
        if came_back:
            log.info("read replica %s answers; replayed up to %s", replica.name, format_lsn(replay))

    def _forget_replayed_peers(self) -> None:
        horizon = self.horizon_lsn()
        if horizon is None:
            return
        with self._lock:
            peers = self._peers
            if peers.floor <= horizon:
                peers.floor = 0
            for peer in [peer for peer, lsn in peers.entries.items() if lsn <= horizon]:
                del peers.entries[peer]

    def horizon_lsn(self) -> int | None:
        """The primary's position `max lag` ago: every replica allowed to serve reads has
        replayed it, so a write at or before it is visible wherever a read goes."""
        cutoff = self.clock() - self.max_lag_s
        with self._lock:
            times = [sampled_at for sampled_at, _ in self._samples]
            index = bisect.bisect_right(times, cutoff)
            return self._samples[index - 1][1] if index > 0 else None


def _freshness(samples: list[tuple[float, int]], replay: int, probed_at: float) -> tuple[float | None, float, int]:
    """(time of the latest primary sample `replay` covers, seconds behind, bytes behind)."""
    if not samples:
        return None, 0.0, 0
    lsns = [lsn for _, lsn in samples]
    covered = bisect.bisect_right(lsns, replay)  # samples [0, covered) are replayed
    behind_bytes = max(0, lsns[-1] - replay)
    if covered == len(samples):
        return samples[-1][0], 0.0, behind_bytes
    # Behind since the primary first showed WAL the replica has not replayed.
    lag = probed_at - samples[covered][0]
    return (samples[covered - 1][0] if covered > 0 else None), max(0.0, lag), behind_bytes

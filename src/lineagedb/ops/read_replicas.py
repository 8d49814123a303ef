"""`--read-database`: building the replica set from the settings, and its Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from lineagedb.config import ConfigurationError, Settings
from lineagedb.ops.database import parse_url, redacted
from lineagedb.store.engine import PoolSettings, create_engine
from lineagedb.store.replicas import PRIMARY, Replica, ReplicaSet

# A replica that does not accept a connection within this long is skipped (the primary serves).
REPLICA_CONNECT_TIMEOUT_S = 2
# libpq options for replica connections, unless the URL sets them: a replica cut off by the
# network (no RST) fails the reads waiting on it within ~10 s instead of holding them until the
# kernel gives up (minutes); the read then runs on the primary.
REPLICA_TCP_OPTIONS = {
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def replica_name(url: URL) -> str:
    """host:port/database: what logs and metric labels call a replica (never credentials)."""
    port = f":{url.port}" if url.port else ""
    return f"{url.host or 'localhost'}{port}/{url.database or ''}"


def build_replica_set(settings: Settings, primary: sa.Engine, pool: PoolSettings) -> ReplicaSet | None:
    """The replicas of `--read-database`, or None when there are none (the default)."""
    if not settings.read_database_urls:
        return None
    if primary.dialect.name != "postgresql":
        raise ConfigurationError("--read-database needs a PostgreSQL primary (--database postgresql://...)")
    if not settings.read_max_lag_s > 0:
        raise ConfigurationError("--read-max-lag-s must be a positive number of seconds")
    replicas = []
    for raw in settings.read_database_urls:
        url = parse_url(raw)
        if url.get_backend_name() != "postgresql":
            raise ConfigurationError(
                f"--read-database {redacted(url)}: read replicas must be PostgreSQL streaming replicas"
            )
        options = {key: value for key, value in REPLICA_TCP_OPTIONS.items() if key not in url.query}
        try:
            engine = create_engine(url.update_query_dict(options), pool, connect_timeout_s=REPLICA_CONNECT_TIMEOUT_S)
        except (sa_exc.ArgumentError, ImportError) as error:
            raise ConfigurationError(f"cannot use --read-database {redacted(url)}: {error}") from error
        replicas.append(Replica(replica_name(url), engine))
    return ReplicaSet(primary, replicas, settings.read_max_lag_s)


class ReplicaCollector(Collector):
    """Reads per target, why reads went to the primary, each replica's lag (read at scrape time)."""

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    def collect(self) -> Iterable[Metric]:
        replicas = self.replicas
        reads = CounterMetricFamily(
            "lineagedb_read_calls",
            "Read-only calls by the database that served them (primary, or a replica's host:port/database)",
            labels=["target"],
        )
        reasons = CounterMetricFamily(
            "lineagedb_read_primary",
            "Read-only calls served by the primary while replicas are configured, by reason",
            labels=["reason"],
        )
        primary_total = sum(replicas.primary_reads.values())
        reads.add_metric([PRIMARY], float(primary_total))
        for reason, count in sorted(replicas.primary_reads.items()):
            reasons.add_metric([reason], float(count))
        lag = GaugeMetricFamily(
            "lineagedb_read_replica_lag_seconds",
            "Seconds a replica's replayed WAL is behind the primary's (0: caught up at the last check)",
            labels=["replica"],
        )
        behind = GaugeMetricFamily(
            "lineagedb_read_replica_lag_bytes", "Bytes of WAL the replica has yet to replay", labels=["replica"]
        )
        up = GaugeMetricFamily(
            "lineagedb_read_replica_up", "1 while the replica answers and is a standby, else 0", labels=["replica"]
        )
        for replica in replicas.replicas:
            reads.add_metric([replica.name], float(replica.reads))
            up.add_metric([replica.name], 1.0 if replica.up and replica.standby else 0.0)
            if replica.lag_s is not None:
                lag.add_metric([replica.name], replica.lag_s)
            if replica.behind_bytes is not None:
                behind.add_metric([replica.name], float(replica.behind_bytes))
        failures = CounterMetricFamily(
            "lineagedb_read_replica_failures", "Times a replica failed and was set aside", labels=[]
        )
        failures.add_metric([], float(replicas.failures))
        peers = GaugeMetricFamily(
            "lineagedb_read_remembered_callers", "Caller addresses whose latest write the server still tracks"
        )
        peers.add_metric([], float(replicas.peers_remembered()))
        yield from (reads, reasons, lag, behind, up, failures, peers)


def register_metrics(registry: CollectorRegistry, replicas: ReplicaSet) -> None:
    registry.register(ReplicaCollector(replicas))

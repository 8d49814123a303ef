"""Prometheus metrics: per-method calls by status code, latency, in-flight calls, pool usage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolCollector(Collector):
    """Reads the SQLAlchemy pool at scrape time."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        pool: Any = self.engine.pool
        connections = GaugeMetricFamily(
            "lineagedb_db_pool_connections", "Database connections in the pool, by state", labels=["state"]
        )
        size = GaugeMetricFamily("lineagedb_db_pool_size", "Configured size of the connection pool")
        if hasattr(pool, "checkedout"):
            connections.add_metric(["checked_out"], float(pool.checkedout()))
            connections.add_metric(["idle"], float(pool.checkedin()))
            connections.add_metric(["overflow"], float(max(pool.overflow(), 0)))
            size.add_metric([], float(pool.size()))
        yield connections
        yield size


class Metrics:
    def __init__(self, engine: sa.Engine | None = None, ready: Callable[[], bool] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "lineagedb_grpc_calls",
            "gRPC calls handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lineagedb_grpc_call_duration_seconds",
            "gRPC call latency, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "lineagedb_grpc_calls_in_flight", "gRPC calls being handled, by method", ["method"], registry=self.registry
        )
        if engine is not None:
            self.registry.register(PoolCollector(engine))
        if ready is not None:
            healthy = Gauge(
                "lineagedb_database_healthy", "1 while the database answers health pings", registry=self.registry
            )
            healthy.set_function(lambda: 1.0 if ready() else 0.0)

    def serve(self, host: str, port: int) -> int:
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = int(server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

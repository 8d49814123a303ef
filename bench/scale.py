"""Scale to 10^7 records (issue 19 item 4): load throughput, read and lineage latency at each
size of one growing store, server memory, and CPU per operation with 1 and 3 servers.

One store per backend grows in steps (default 10^5 -> 10^6 -> 10^7 artifacts on PostgreSQL,
10^5 -> 10^6 on SQLite and MariaDB); the shape is `bench/scale_data.py` (pipelines of 100 runs
of 10 steps; half as many executions and twice as many events as artifacts, properties and
pipeline/run contexts on every node). How each part gets in:

* the first step (at most ``--api-max`` artifacts, default 10^5) through one LineageDB server:
  one PutLineageSubgraph per run (20 artifacts, 10 executions, 38 events, two contexts) plus
  one PutEvents for the run's reads of its pipeline's dataset, sequential from one client: the
  API load throughput;
* every later step set-based into the tables with the same rows (PostgreSQL: COPY, with the
  tables' non-unique indexes dropped and rebuilt around it, then ANALYZE; SQLite and MariaDB:
  multi-row INSERTs), then a check through the server that sampled rows read back right.

At every size the same operations are timed through gRPC on random targets (median of
``--reps``): GetArtifactsByID/GetExecutionsByID of 100 ids, a context by name, by-context
reads, the first page of a broad filter (1% of artifacts), the full walk of a selective filter
(100 artifacts) and of a context filter, GetLineageSubgraph (4 and 20 hops) and lineagedb.v1
Provenance and Impact; plus the server's RSS (/proc). Finally on PostgreSQL (``--concurrency``)
24 client processes run a read mix against 1 and 3 servers: operations per server CPU-second
and per CPU-second of the database's backends.

PostgreSQL runs as a deployment sized for its data would: a private PostgreSQL 15 instance
started here (initdb into ``--workdir``/lineagedb-scale-pg or /tmp/lineagedb-scale-pg, a free
local port, trust auth; tests/resilience's PrivatePostgres) with ``shared_buffers`` a quarter of
RAM (``--pg-shared-buffers``), ``effective_cache_size`` three quarters, ``huge_pages = try``
(used when the kernel has ``vm.nr_hugepages`` to spare; the results say whether it did), and
after each step's load and VACUUM ANALYZE the node tables and their indexes read into shared
buffers (pg_prewarm, as far as they fit; what was warmed is in the results).
pg_stat_statements records each step's statements (time, buffer hits and reads). After the
last step the first size's store is built again beside the last in the same instance and
both are measured in alternating rounds (``--baseline-rounds``): the ratio that counts on a
shared machine. ``--pg-shared-server`` uses the machine's server (LINEAGEDB_BENCH_POSTGRES_URL)
as it is configured instead.

    .venv/bin/python bench/scale.py [--backends postgresql,sqlite,mysql] [--max 10000000]
        [--sizes 100000,1000000,10000000] [--reps 15] [--keep] [--no-concurrency]
        [--pg-shared-buffers 6GB] [--pg-setting random_page_cost=1.1] [--no-prewarm]
        [--baseline-rounds 5] [--pg-shared-server]

Writes bench/scale_results.json (or --out) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data as data
from run import LINEAGEDB, ROOT, log, machine_info, running, server_url, unreachable
from workers import CLOCK_TICKS, _processes, _stat_fields, _tree

sys.path.insert(0, str(ROOT))
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as lpb
from lineagedb.proto.lineagedb.v1 import lineage_pb2_grpc as lpb_grpc
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.store.schema import schema_for
from tests.ops.conftest import free_port
from tests.resilience.conftest import PG_BIN, PrivatePostgres  # the tests' private PostgreSQL

BENCH = Path(__file__).resolve().parent
DEFAULT_SIZES = {"postgresql": [10**5, 10**6, 10**7], "sqlite": [10**5, 10**6], "mysql": [10**5, 10**6]}
SCRATCH = "lineagedb_scale"
BIG_TABLES = tuple(data.COLUMNS)
SCHEMA_ATTR = {
    "artifact": "artifact",
    "artifactproperty": "artifact_property",
    "execution": "execution",
    "executionproperty": "execution_property",
    "event": "event",
    "attribution": "attribution",
    "association": "association",
}
MAX_MESSAGE = 256 * 1024 * 1024
# Warmed into shared buffers after each load (see prewarm()): the node tables every read
# fetches rows and properties from, then the edge tables (events, context links).
NODE_TABLES = ("artifact", "artifactproperty", "execution", "executionproperty", "context", "contextproperty")
EDGE_TABLES = ("event", "attribution", "association")
PG_REPORTED = (
    "server_version",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "random_page_cost",
    "max_parallel_workers_per_gather",
    "shared_preload_libraries",
)


# ---------------------------------------------------------------- a private PostgreSQL


def ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _mb(n: float) -> str:
    return f"{int(n) // 2**20}MB"


class ScalePostgres(PrivatePostgres):
    """The tests' private PostgreSQL (run as the `postgres` OS user) in a fixed directory, so
    that ``--keep`` leaves it and ``--reuse`` starts it again."""

    def __init__(self, root: Path, settings: dict[str, str], reuse: bool) -> None:  # no super(): a fixed root
        self.root = root
        self.data = root / "data"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.password = None
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(root),
            "max_connections": "100",  # 3 servers x (pool 8 + overflow 4) + the bench's own
            **settings,
        }
        if reuse and (self.data / "PG_VERSION").exists():
            return
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        shutil.chown(root, "postgres")
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--auth=trust"])

    def close(self, keep: bool) -> None:
        if not keep:
            self.destroy()
            return
        # A clean stop for the next --reuse; the checkpoint first (no time limit) so that
        # pg_ctl's own stop fits in its 60 s.
        with contextlib.suppress(Exception):
            admin = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
            with admin.connect() as connection:
                connection.exec_driver_sql("CHECKPOINT")
            admin.dispose()
        self.stop("fast")


def private_settings(args: argparse.Namespace) -> dict[str, str]:
    """shared_buffers for the hot set (a quarter of RAM, the usual guidance), the planner told
    the OS caches the rest, WAL room for the bulk loads, and the statement statistics."""
    settings = {
        "shared_buffers": args.pg_shared_buffers or _mb(ram_bytes() / 4),
        "effective_cache_size": args.pg_effective_cache_size or _mb(ram_bytes() * 3 / 4),
        "max_wal_size": "8GB",  # COPY of 10^7 rows: no checkpoint every 1 GB of WAL
        "shared_preload_libraries": "pg_stat_statements",
        "track_io_timing": "on",  # pg_stat_statements then splits out time spent reading blocks
        # Shared buffers in 2 MB pages where the kernel has them (vm.nr_hugepages): with 4 kB
        # pages every backend takes a page fault the first time it touches each buffer page,
        # which at 10^7 (random ids over GBs of buffers) was most of a by-id read's growth.
        "huge_pages": "try",
    }
    for item in args.pg_setting:
        key, _, value = item.partition("=")
        settings[key.strip()] = value.strip()
    return settings


def huge_pages_taken() -> int:
    """2 MB pages in use or reserved machine-wide (/proc/meminfo): before and after starting
    the instance, the difference is its shared memory in huge pages."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0])
    return fields.get("HugePages_Total", 0) - fields.get("HugePages_Free", 0) + fields.get("HugePages_Rsvd", 0)


def private_unavailable() -> str | None:
    missing = [name for name in ("initdb", "pg_ctl") if not (PG_BIN / name).exists()]
    if missing or shutil.which("runuser") is None:
        return f"PostgreSQL server binaries missing in {PG_BIN} ({', '.join(missing) or 'runuser'})"
    return None


def pg_settings(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return {
            name: str(connection.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar_one())
            for name in PG_REPORTED
        }


def vacuum_analyze(engine: sa.Engine) -> float:
    began = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE)")
    return time.perf_counter() - began


def prewarm(engine: sa.Engine) -> dict[str, Any]:
    """Reads relations into shared buffers with pg_prewarm, each whole or not at all, within 90%
    of shared_buffers, in order of what reads need most: the node tables and their primary keys
    (every read fetches nodes and their properties by id), then the node tables' other indexes,
    then the edge tables and theirs (within those two, smallest first). What does not fit is
    listed under ``skipped``."""
    began = time.perf_counter()
    warmed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        budget = 0.9 * int(
            connection.exec_driver_sql("SELECT pg_size_bytes(current_setting('shared_buffers'))").scalar_one()
        )
        tiers: list[list[str]] = [[], [], []]
        for table in (*NODE_TABLES, *EDGE_TABLES):
            indexes = connection.execute(
                sa.text(
                    "SELECT c.relname, i.indisprimary FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indrelid = CAST(:t AS regclass) ORDER BY c.relname"
                ),
                {"t": table},
            ).all()
            if table in NODE_TABLES:
                tiers[0] += [table, *(str(name) for name, primary in indexes if primary)]
                tiers[1] += [str(name) for name, primary in indexes if not primary]
            else:
                tiers[2] += [table, *(str(name) for name, _ in indexes)]

        def size(relation: str) -> int:
            query = sa.text("SELECT pg_relation_size(CAST(:r AS regclass))")
            return int(connection.execute(query, {"r": relation}).scalar_one())

        used = 0
        for tier, relations in enumerate(tiers):
            sized = [(relation, size(relation)) for relation in relations]
            if tier:  # past the first tier, the smallest first: the most lookups served per byte
                sized.sort(key=lambda pair: pair[1])
            for relation, nbytes in sized:
                entry: dict[str, Any] = {"relation": relation, "tier": tier, "bytes": nbytes}
                if used + nbytes > budget:
                    skipped.append(entry)
                    continue
                t = time.perf_counter()
                entry["blocks"] = int(
                    connection.execute(
                        sa.text("SELECT pg_prewarm(CAST(:r AS regclass), 'buffer')"), {"r": relation}
                    ).scalar_one()
                )
                entry["seconds"] = time.perf_counter() - t
                used += nbytes
                warmed.append(entry)
    return {
        "mode": "pg_prewarm(relation, 'buffer') into shared_buffers; tiers: 0 node tables + primary keys,"
        " 1 their other indexes, 2 edge tables + indexes",
        "budget_bytes": int(budget),
        "warmed_bytes": used,
        "warmed": warmed,
        "skipped": skipped,
        "seconds": time.perf_counter() - began,
    }


def statements_reset(engine: sa.Engine) -> bool:
    """Empties pg_stat_statements; False where it is not loaded (the shared server)."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            connection.exec_driver_sql("SELECT pg_stat_statements_reset()")
        return True
    except sa.exc.DBAPIError:
        return False


def statements_top(engine: sa.Engine, n: int = 25) -> list[dict[str, Any]]:
    """This database's statements since the reset, by total execution time: where a read's
    database time goes (calls, mean ms, shared buffer hits, reads and pages dirtied (hint bits),
    ms reading blocks)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT s.query, s.calls, s.mean_exec_time, s.total_exec_time, s.rows, s.shared_blks_hit,"
                " s.shared_blks_read, s.shared_blks_dirtied, s.blk_read_time FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
                " ORDER BY s.total_exec_time DESC LIMIT :n"
            ),
            {"n": n},
        ).all()
    return [
        {
            "query": " ".join(str(query).split())[:400],
            "calls": int(calls),
            "mean_ms": float(mean),
            "total_ms": float(total),
            "rows": int(count),
            "shared_blks_hit": int(hit),
            "shared_blks_read": int(read),
            "shared_blks_dirtied": int(dirtied),
            "blk_read_ms": float(read_ms),
        }
        for query, calls, mean, total, count, hit, read, dirtied, read_ms in rows
    ]


# ---------------------------------------------------------------- the scratch database


@contextlib.contextmanager
def scratch(backend: str, directory: Path, keep: bool, reuse: bool = False, admin: str | None = None) -> Iterator[str]:
    """The dedicated scratch database, created empty (dropped first if a run left one), or
    with ``reuse`` the one a ``--keep`` run left; on the server at ``admin`` (a URL) or the
    machine's."""
    if backend == "sqlite":
        path = directory / f"{SCRATCH}.db"
        if not reuse:
            path.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        if not keep:
            path.unlink(missing_ok=True)
        return
    admin_url = make_url(admin or server_url(backend))
    admin_engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def drop() -> None:
        with admin_engine.connect() as connection:
            quoted = f'"{SCRATCH}" WITH (FORCE)' if backend == "postgresql" else f"`{SCRATCH}`"
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))

    if reuse:
        yield admin_url.set(database=SCRATCH).render_as_string(hide_password=False)
        if not keep:
            drop()
        admin_engine.dispose()
        return
    drop()
    with admin_engine.connect() as connection:
        suffix = "" if backend == "postgresql" else " CHARACTER SET utf8mb4"
        quoted = f'"{SCRATCH}"' if backend == "postgresql" else f"`{SCRATCH}`"
        connection.execute(sa.text(f"CREATE DATABASE {quoted}{suffix}"))
    try:
        yield admin_url.set(database=SCRATCH).render_as_string(hide_password=False)
    finally:
        if not keep:
            drop()
        admin_engine.dispose()


@contextlib.contextmanager
def mysql_buffer_pool(size: str) -> Iterator[dict[str, Any]]:
    """The machine's MariaDB/MySQL with an InnoDB buffer pool of `size` bytes ("auto": a quarter
    of RAM, as the private PostgreSQL's shared_buffers) for the run, resized online and put
    back afterwards. The default 128 MB held the 10^6 store's by-id reads to 2.3-3.7x of 10^5."""
    engine = sa.create_engine(server_url("mysql"), isolation_level="AUTOCOMMIT")
    wanted = ram_bytes() // 4 if size == "auto" else int(size)
    with engine.connect() as connection:
        before = int(connection.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar_one())
        connection.execute(sa.text("SET GLOBAL innodb_buffer_pool_size = :n"), {"n": wanted})
        applied = _buffer_pool_resized(connection)
    try:
        yield {"before_bytes": before, "bytes": applied}
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text("SET GLOBAL innodb_buffer_pool_size = :n"), {"n": before})
            _buffer_pool_resized(connection)
        engine.dispose()


def _buffer_pool_resized(connection: sa.Connection) -> int:
    """The pool's size once an online resize (which runs in the background) has finished."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = connection.execute(sa.text("SHOW STATUS LIKE 'Innodb_buffer_pool_resize_status'")).first()
        if status is None or not str(status[1]) or "complete" in str(status[1]).lower():
            break
        time.sleep(0.2)
    return int(connection.execute(sa.text("SELECT @@innodb_buffer_pool_size")).scalar_one())


def disk_bytes(engine: sa.Engine, backend: str, url: str) -> int | None:
    with engine.connect() as connection:
        if backend == "postgresql":
            return int(connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
        if backend == "mysql":
            value = connection.execute(
                sa.text(
                    "SELECT SUM(data_length + index_length) FROM information_schema.tables"
                    " WHERE table_schema = DATABASE()"
                )
            ).scalar_one()
            return int(value or 0)
    path = Path(make_url(url).database or "")
    return path.stat().st_size if path.exists() else None


# ---------------------------------------------------------------- the API part


def stubs(address: str) -> tuple[grpc.Channel, svc_grpc.MetadataStoreServiceStub, lpb_grpc.LineageServiceStub]:
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    channel = grpc.insecure_channel(address, options=options)
    return channel, svc_grpc.MetadataStoreServiceStub(channel), lpb_grpc.LineageServiceStub(channel)


def put_types(stub: svc_grpc.MetadataStoreServiceStub) -> dict[str, int]:
    request = data.type_request()
    response = stub.PutTypes(request)
    types = dict(zip([t.name for t in request.artifact_types], response.artifact_type_ids, strict=True))
    types |= dict(zip([t.name for t in request.execution_types], response.execution_type_ids, strict=True))
    types |= dict(zip([t.name for t in request.context_types], response.context_type_ids, strict=True))
    return types


def load_api(stub: svc_grpc.MetadataStoreServiceStub, types: dict[str, int], s1: int) -> dict[str, Any]:
    """Runs [0, s1 / 20) through PutLineageSubgraph (+ PutEvents), one call at a time."""
    runs = s1 // data.ARTIFACTS_PER_RUN
    events = 0
    began = time.perf_counter()
    latencies: list[float] = []
    for r in range(runs):
        request = data.run_request(r, types)
        t = time.perf_counter()
        response = stub.PutLineageSubgraph(request)
        latencies.append(time.perf_counter() - t)
        x0, s0 = r * data.STEPS_PER_RUN, r * data.ARTIFACTS_PER_RUN
        if list(response.artifact_ids) != list(range(s0 + 1, s0 + data.ARTIFACTS_PER_RUN + 1)) or list(
            response.execution_ids
        ) != list(range(x0 + 1, x0 + data.STEPS_PER_RUN + 1)):
            raise RuntimeError(
                f"run {r}: ids not in sequence ({response.artifact_ids[:3]}...); the store was not empty?"
            )
        events += len(request.event_edges)
        reads = data.dataset_events(r)
        if reads:
            stub.PutEvents(svc.PutEventsRequest(events=reads))
            events += len(reads)
        if r and r % 1000 == 0:
            log(f"  api: {r}/{runs} runs, {r * data.ARTIFACTS_PER_RUN / (time.perf_counter() - began):.0f} artifacts/s")
    seconds = time.perf_counter() - began
    return {
        "how": "gRPC PutLineageSubgraph per run + PutEvents, one client, sequential",
        "artifacts": s1,
        "executions": s1 // 2,
        "events": events,
        "calls": runs * 2,
        "seconds": seconds,
        "artifacts_per_s": s1 / seconds,
        "nodes_and_events_per_s": (s1 + s1 // 2 + events) / seconds,
        "put_lineage_subgraph_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
    }


# ---------------------------------------------------------------- the set-based part


class _CopyStream(io.RawIOBase):
    """A file-like object over rows in PostgreSQL's COPY text format."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self.rows = iter(rows)
        self.buffer = b""

    @staticmethod
    def _field(value: Any) -> str:
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        return str(value)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size and size > 0 else 1 << 20
        parts = [self.buffer]
        have = len(self.buffer)
        field = self._field
        for row in self.rows:
            line = ("\t".join([field(v) for v in row]) + "\n").encode()
            parts.append(line)
            have += len(line)
            if have >= want:
                break
        chunk = b"".join(parts)
        self.buffer = chunk[want:]
        return chunk[:want]


def _write_contexts(engine: sa.Engine, types: dict[str, int], s0: int, s1: int) -> dict[str, int]:
    """Contexts the runs of [s0, s1) need (new pipelines and runs), with their properties;
    returns name -> id of every context those runs use."""
    schema = schema_for(engine.dialect.name)
    pipeline_type, run_type = types[data.PIPELINE_TYPE], types[data.RUN_TYPE]
    with engine.begin() as connection:
        existing = {
            name: int(i)
            for i, name in connection.execute(
                sa.select(schema.context.c.id, schema.context.c.name).where(schema.context.c.type_id == pipeline_type)
            )
        }
        wanted = data.new_contexts(s0, s1, set(existing))
        t = data.T0_MS + 5 * s0
        rows = [
            {
                "type_id": pipeline_type if kind == data.PIPELINE_TYPE else run_type,
                "name": name,
                "create_time_since_epoch": t,
                "last_update_time_since_epoch": t,
            }
            for kind, name, _ in wanted
        ]
        for i in range(0, len(rows), 10_000):
            connection.execute(sa.insert(schema.context), rows[i : i + 10_000])
        names = [name for _, name, _ in wanted]
        ids = dict(existing)
        for i in range(0, len(names), 5_000):
            chunk = names[i : i + 5_000]
            query = sa.select(schema.context.c.id, schema.context.c.name).where(
                schema.context.c.type_id.in_([pipeline_type, run_type]), schema.context.c.name.in_(chunk)
            )
            ids |= {name: int(i) for i, name in connection.execute(query)}
        properties = [
            {
                "context_id": ids[name],
                "name": prop,
                "is_custom_property": custom,
                "int_value": int_value,
                "string_value": string_value,
            }
            for _, name, props in wanted
            for prop, custom, int_value, string_value in props
        ]
        for i in range(0, len(properties), 10_000):
            connection.execute(sa.insert(schema.context_property), properties[i : i + 10_000])
    return ids


def _secondary_indexes(connection: sa.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the loaded tables' indexes that back no constraint."""
    rows = connection.execute(
        sa.text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema()"
            " AND i.tablename = ANY(:tables) AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
            " WHERE c.conname = i.indexname)"
        ),
        {"tables": list(BIG_TABLES)},
    )
    return [(str(name), str(definition)) for name, definition in rows]


def load_sql(engine: sa.Engine, types: dict[str, int], s0: int, s1: int) -> dict[str, Any]:
    """Artifacts [s0, s1) and everything that goes with them, straight into the tables."""
    backend = engine.dialect.name
    began = time.perf_counter()
    context_ids = _write_contexts(engine, types, s0, s1)
    rows = data.Rows(types, s0, s1, context_ids)
    timings: dict[str, Any] = {"contexts_s": time.perf_counter() - began}
    counts: dict[str, int] = {}
    if backend == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SET synchronous_commit = off")
            cursor.execute("SET maintenance_work_mem = '1GB'")
            with engine.connect() as connection:
                indexes = _secondary_indexes(connection)
            t = time.perf_counter()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            raw.commit()
            for table in BIG_TABLES:
                t = time.perf_counter()
                generator = getattr(rows, table)()
                counter = _Counter(generator)
                columns = ", ".join(data.COLUMNS[table])
                cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", _CopyStream(counter))
                raw.commit()
                counts[table] = counter.n
                timings[f"{table}_s"] = time.perf_counter() - t
                log(f"  copy {table}: {counter.n} rows in {timings[f'{table}_s']:.1f} s")
            t = time.perf_counter()
            for _, definition in indexes:
                cursor.execute(definition)
                raw.commit()
            timings["rebuild_indexes_s"] = time.perf_counter() - t
            timings["rebuilt_indexes"] = [name for name, _ in indexes]
            for table in ("artifact", "execution"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")
            raw.commit()
            # VACUUM, not only ANALYZE: rows COPYed in carry no hint bits and no visibility map,
            # so until autovacuum gets there every first read of a page checks the commit log
            # and dirties it, and index-only scans visit the heap (see bench/README.md).
            # (On a connection of its own: setting autocommit on the pool's proxy of this one
            # did not reach psycopg2, and VACUUM then failed inside a transaction block.)
            timings["vacuum_analyze_s"] = vacuum_analyze(engine)
        finally:
            raw.close()
    else:
        schema = schema_for(backend)
        for table in BIG_TABLES:
            t = time.perf_counter()
            target = getattr(schema, SCHEMA_ATTR[table])
            n = 0
            batch: list[dict[str, Any]] = []
            names = data.COLUMNS[table]
            with engine.begin() as connection:
                for row in getattr(rows, table)():
                    batch.append(dict(zip(names, row, strict=True)))
                    if len(batch) >= 20_000:
                        connection.execute(sa.insert(target), batch)
                        n += len(batch)
                        batch.clear()
                if batch:
                    connection.execute(sa.insert(target), batch)
                    n += len(batch)
            counts[table] = n
            timings[f"{table}_s"] = time.perf_counter() - t
            log(f"  insert {table}: {n} rows in {timings[f'{table}_s']:.1f} s")
        t = time.perf_counter()
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE" if backend == "sqlite" else "ANALYZE TABLE " + ", ".join(BIG_TABLES))
        timings["analyze_s"] = time.perf_counter() - t
    seconds = time.perf_counter() - began
    total = sum(counts.values())
    return {
        "how": "COPY (secondary indexes rebuilt, VACUUM ANALYZE)"
        if backend == "postgresql"
        else "multi-row INSERT + ANALYZE",
        "artifacts": s1 - s0,
        "rows": counts,
        "seconds": seconds,
        "rows_per_s": total / seconds,
        "timings": timings,
    }


class _Counter:
    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for row in self.rows:
            self.n += 1
            yield row


# ---------------------------------------------------------------- checks and measurements


def check(stub: svc_grpc.MetadataStoreServiceStub, types: dict[str, int], s1: int, rng: random.Random) -> list[str]:
    """Sampled artifacts (and their executions) read back as the generator defines them."""
    problems: list[str] = []
    names = {v: k for k, v in types.items()}
    for s in sorted({rng.randrange(s1) for _ in range(5)} | {s1 - 1}):
        (artifact,) = stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=[s + 1])).artifacts
        got = {k: getattr(v, v.WhichOneof("value") or "int_value") for k, v in artifact.properties.items()}
        got |= {
            f"custom:{k}": getattr(v, v.WhichOneof("value") or "int_value")
            for k, v in artifact.custom_properties.items()
        }
        want = {("custom:" if c else "") + n: (i if i is not None else v) for n, c, i, v in data.artifact_properties(s)}
        if names.get(artifact.type_id) != data.artifact_type(s) or artifact.uri != data.uri(s) or got != want:
            problems.append(f"artifact {s + 1}: {artifact}")
        x = s // data.OUTPUTS_PER_STEP
        p, q = data.run_of(x)
        contexts = stub.GetContextsByArtifact(svc.GetContextsByArtifactRequest(artifact_id=s + 1)).contexts
        if sorted(c.name for c in contexts) != sorted([data.pipeline_name(p), data.run_name(p, q)]):
            problems.append(f"artifact {s + 1} contexts: {[c.name for c in contexts]}")
        events = stub.GetEventsByExecutionIDs(svc.GetEventsByExecutionIDsRequest(execution_ids=[x + 1])).events
        want_events = {(a + 1, mlmd.Event.INPUT) for a in data.inputs(x)}
        want_events |= {(data.OUTPUTS_PER_STEP * x + k + 1, mlmd.Event.OUTPUT) for k in range(data.OUTPUTS_PER_STEP)}
        if {(e.artifact_id, e.type) for e in events} != want_events:
            problems.append(f"execution {x + 1} events: {[(e.artifact_id, e.type) for e in events]}")
        executions = stub.GetExecutionsByContext(
            svc.GetExecutionsByContextRequest(context_id=next(c.id for c in contexts if c.name == data.run_name(p, q)))
        ).executions
        if len(executions) != data.STEPS_PER_RUN:
            problems.append(f"run {data.run_name(p, q)}: {len(executions)} executions")
    return problems


def _walk(call: Callable[[mlmd.ListOperationOptions], Any], options: mlmd.ListOperationOptions) -> int:
    n = 0
    while True:
        response = call(options)
        n += len(response.artifacts)
        if not response.next_page_token:
            return n
        options.next_page_token = response.next_page_token


def operations(
    stub: svc_grpc.MetadataStoreServiceStub, lineage: lpb_grpc.LineageServiceStub, s1: int
) -> dict[str, Callable[[random.Random], int]]:
    """name -> call(rng): one call on a random target; returns the answer's size (nodes)."""
    runs = s1 // data.ARTIFACTS_PER_RUN

    def a_run(rng: random.Random) -> tuple[int, int, int]:
        r = rng.randrange(runs)
        return r, *divmod(r, data.RUNS_PER_PIPELINE)

    def context_id(type_name: str, name: str) -> int:
        request = svc.GetContextByTypeAndNameRequest(type_name=type_name, context_name=name)
        return int(stub.GetContextByTypeAndName(request).context.id)

    def by_id(rng: random.Random) -> int:
        ids = [i + 1 for i in rng.sample(range(s1), 100)]
        return len(stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids)).artifacts)

    def executions_by_id(rng: random.Random) -> int:
        ids = [i + 1 for i in rng.sample(range(s1 // 2), 100)]
        return len(stub.GetExecutionsByID(svc.GetExecutionsByIDRequest(execution_ids=ids)).executions)

    def context_by_name(rng: random.Random) -> int:
        _, p, q = a_run(rng)
        return 1 if context_id(data.RUN_TYPE, data.run_name(p, q)) else 0

    def artifacts_by_run_context(rng: random.Random) -> int:
        _, p, q = a_run(rng)
        request = svc.GetArtifactsByContextRequest(context_id=context_id(data.RUN_TYPE, data.run_name(p, q)))
        return len(stub.GetArtifactsByContext(request).artifacts)

    def executions_by_pipeline_page(rng: random.Random) -> int:
        _, p, _ = a_run(rng)
        request = svc.GetExecutionsByContextRequest(
            context_id=context_id(data.PIPELINE_TYPE, data.pipeline_name(p)),
            options=mlmd.ListOperationOptions(max_result_size=100),
        )
        return len(stub.GetExecutionsByContext(request).executions)

    def filter_broad_first_page(rng: random.Random) -> int:
        _, _, q = a_run(rng)
        options = mlmd.ListOperationOptions(max_result_size=20, filter_query=f"properties.span.int_value = {q}")
        return len(stub.GetArtifacts(svc.GetArtifactsRequest(options=options)).artifacts)

    def filter_selective_walk(rng: random.Random) -> int:
        batch = rng.randrange(max(1, s1 // 100))
        query = f"custom_properties.batch.string_value = 'b{batch}'"
        options = mlmd.ListOperationOptions(max_result_size=20, filter_query=query)
        return _walk(lambda o: stub.GetArtifacts(svc.GetArtifactsRequest(options=o)), options)

    def filter_context_walk(rng: random.Random) -> int:
        _, p, q = a_run(rng)
        query = f"contexts_a.name = '{data.run_name(p, q)}' AND type = 'Model'"
        options = mlmd.ListOperationOptions(max_result_size=20, filter_query=query)
        return _walk(lambda o: stub.GetArtifacts(svc.GetArtifactsRequest(options=o)), options)

    def subgraph(hops: int) -> Callable[[random.Random], int]:
        def call(rng: random.Random) -> int:
            r, _, _ = a_run(rng)
            model = (r + 1) * data.ARTIFACTS_PER_RUN  # id of the run's last output (s + 1)
            starting = mlmd.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {model}")
            options = mlmd.LineageSubgraphQueryOptions(starting_artifacts=starting, max_num_hops=hops)
            response = stub.GetLineageSubgraph(svc.GetLineageSubgraphRequest(lineage_subgraph_query_options=options))
            return len(response.lineage_subgraph.artifacts) + len(response.lineage_subgraph.executions)

        return call

    def provenance(rng: random.Random) -> int:
        r, _, _ = a_run(rng)
        request = lpb.ClosureRequest(node=lpb.NodeRef(artifact_id=(r + 1) * data.ARTIFACTS_PER_RUN))
        response = lineage.Provenance(request)
        return len(response.artifacts) + len(response.executions)

    def impact(rng: random.Random) -> int:
        _, p, _ = a_run(rng)
        response = lineage.Impact(lpb.ImpactRequest(node=lpb.NodeRef(artifact_id=data.dataset(p)[0] + 1)))
        return len(response.artifacts) + len(response.executions)

    return {
        "get_artifacts_by_id_100": by_id,
        "get_executions_by_id_100": executions_by_id,
        "get_context_by_type_and_name": context_by_name,
        "get_artifacts_by_context_run": artifacts_by_run_context,
        "get_executions_by_context_pipeline_page100": executions_by_pipeline_page,
        "filter_broad_first_page": filter_broad_first_page,
        "filter_selective_walk": filter_selective_walk,
        "filter_context_walk": filter_context_walk,
        "lineage_subgraph_4_hops": subgraph(4),
        "lineage_subgraph_20_hops": subgraph(20),
        "provenance_model": provenance,
        "impact_dataset": impact,
    }


def measure(
    stub: svc_grpc.MetadataStoreServiceStub, lineage: lpb_grpc.LineageServiceStub, s1: int, reps: int, seed: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, call in operations(stub, lineage, s1).items():
        rng = random.Random(f"{seed}-{name}")
        for _ in range(2):  # warm the server's caches (types, parsed filters), not the data
            call(rng)
        times, sizes = [], []
        for _ in range(reps):
            t = time.perf_counter()
            sizes.append(call(rng))
            times.append(1000 * (time.perf_counter() - t))
        out[name] = {
            "median_ms": statistics.median(times),
            "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))],
            "min_ms": min(times),
            "answer_median": statistics.median(sizes),
        }
    return out


def rss_bytes(pid: int) -> int:
    total = 0
    for member in _tree(pid, _processes()):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


# ---------------------------------------------------------------- 1 and 3 servers, CPU per operation


def _cpu(pids: Iterable[int]) -> dict[str, float]:
    user = system = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            user += int(fields[11]) / CLOCK_TICKS
            system += int(fields[12]) / CLOCK_TICKS
    return {"user": user, "system": system}


def _context_switches(pids: Iterable[int]) -> dict[str, int]:
    """Voluntary (waiting: I/O, a lock, the GIL) and involuntary (preempted by the scheduler)
    context switches of `pids` and their threads so far (/proc/PID/task/TID/status)."""
    counts = {"voluntary": 0, "nonvoluntary": 0}
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    for line in (task / "status").read_text().splitlines():
                        name, _, value = line.partition(":")
                        if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                            counts[name.split("_")[0]] += int(value)
    return counts


class _BackendSampler:
    """CPU of the database's backends (process titles ``postgres: ... <database> ...``), read
    from /proc every 50 ms so backends that come and go during a run are counted too."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} "
        self.first: dict[int, dict[str, float]] = {}
        self.last: dict[int, dict[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, baseline: bool) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if not title.startswith(b"postgres: ") or self.marker.encode() not in title:
                continue
            pid = int(entry.name)
            cpu = _cpu([pid])
            if pid not in self.first:  # born during the run: from 0 (its start-up counts)
                self.first[pid] = cpu if baseline else {"user": 0.0, "system": 0.0}
            self.last[pid] = cpu

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self._sample(False)

    def __enter__(self) -> _BackendSampler:
        self._sample(True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self._sample(False)

    def used(self) -> dict[str, float]:
        return {k: sum(self.last[p][k] - self.first[p][k] for p in self.last) for k in ("user", "system")}


def _warm(addresses: list[str], ids: list[int]) -> None:
    """Open every server's connection pool before the timed run (12 concurrent calls each)."""

    def burst(address: str) -> None:
        channel, stub, _ = stubs(address)
        with channel:
            for i in range(10):
                stub.GetArtifactsByID(svc.GetArtifactsByIDRequest(artifact_ids=ids[i * 10 : i * 10 + 10]))

    with ThreadPoolExecutor(12 * len(addresses)) as pool:
        list(pool.map(burst, [a for a in addresses for _ in range(12)]))


def concurrency_stage(
    url: str,
    engine: sa.Engine,
    s1: int,
    clients: int,
    seconds: float,
    directory: Path,
    split_pool: bool = False,
    rounds: int = 3,
    pool_size: int = 0,
    client_rate: float = 0.0,
    clients_per_server: bool = False,
) -> dict[str, Any]:
    """24 client processes (the read mix of bench/concurrency.py) over 1 and 3 servers, in
    alternating rounds (the machine is shared: the median of the per-round figures counts).

    With ``split_pool`` the 3 servers share one server's connection budget (12 connections,
    a third each); by default each has its own. ``client_rate`` paces each client (calls per
    second) instead of sending back to back; ``clients_per_server`` gives each server
    ``clients`` of its own (the same load per server) instead of sharing them."""
    import concurrency

    rng = random.Random(19)
    runs = s1 // data.ARTIFACTS_PER_RUN
    with engine.connect() as connection:
        sample = [data.run_name(*divmod(rng.randrange(runs), data.RUNS_PER_PIPELINE)) for _ in range(200)]
        contexts = [
            int(i) for (i,) in connection.execute(sa.text("SELECT id FROM context WHERE name = ANY(:n)"), {"n": sample})
        ]
    seed = {"artifact_ids": [rng.randrange(s1) + 1 for _ in range(5000)], "context_ids": contexts}
    names = ("by_id", "by_context", "lineage")
    results: dict[str, Any] = {"1_servers": [], "3_servers": []}
    for count in [c for _ in range(rounds) for c in (1, 3)]:
        pool = ["--pool-size", str(-(-12 // count)), "--pool-max-overflow", "0"] if split_pool else []
        if pool_size:
            pool = ["--pool-size", str(pool_size)]
        # The same clients for either count, or (clients_per_server) the same load per server.
        callers = clients * count if clients_per_server else clients
        with contextlib.ExitStack() as stack:
            serve = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url, "--workers", "1"]
            servers = [
                stack.enter_context(running([*serve, *pool], directory / f"conc-{count}-{i}.log")) for i in range(count)
            ]
            addresses = [f"127.0.0.1:{s.port}" for s in servers]
            context = multiprocessing.get_context("spawn")
            out, ready, go = context.Queue(), context.Queue(), context.Event()
            deadline = context.Value("d", 0.0)
            children = [
                context.Process(
                    target=concurrency.client,
                    args=(
                        addresses[i % count],
                        seed,
                        names,
                        f"scale-{count}-{i}",
                        ready,
                        go,
                        deadline,
                        out,
                        client_rate,
                    ),
                )
                for i in range(callers)
            ]
            for child in children:
                child.start()
            for _ in children:
                ready.get(timeout=600)
            server_pids = set().union(*(_tree(s.process.pid, _processes()) for s in servers))
            _warm(addresses, seed["artifact_ids"])
            time.sleep(1.0)
            with _BackendSampler(make_url(url).database or SCRATCH) as sampler:
                before_server = _cpu(server_pids)
                before_switches = _context_switches(server_pids)
                deadline.value = time.time() + seconds
                go.set()
                while time.time() < deadline.value:
                    time.sleep(0.05)
                reports = [out.get(timeout=seconds + 300) for _ in children]
                after_server = _cpu(server_pids)
                after_switches = _context_switches(server_pids)
            for child in children:
                child.join(timeout=30)
        calls = sum(len(v) for r in reports for v in r["latencies"].values())
        errors = sum(sum(r["errors"].values()) for r in reports)
        server_cpu = {k: after_server[k] - before_server[k] for k in after_server}
        db_cpu = sampler.used()
        server_total, db_total = sum(server_cpu.values()), sum(db_cpu.values())
        cell = {
            "pool_per_server": pool,
            "clients": callers,
            "client_rate_per_s": client_rate or None,
            "seconds": seconds,
            "calls": calls,
            "errors": errors,
            "calls_per_s": calls / seconds,
            "server_cpu_s": server_cpu,
            "db_backend_cpu_s": db_cpu,
            "db_backends": len(sampler.last),
            # Per call: where the servers' extra CPU goes when more processes share the cores.
            "server_switches_per_call": {
                k: (after_switches[k] - before_switches[k]) / calls if calls else None for k in after_switches
            },
            "ops_per_server_cpu_s": calls / server_total if server_total else None,
            "ops_per_db_cpu_s": calls / db_total if db_total else None,
        }
        results[f"{count}_servers"].append(cell)
        log(f"  {count} server(s): {cell}")
    for key in ("calls_per_s", "ops_per_server_cpu_s", "ops_per_db_cpu_s"):
        ones = [c[key] for c in results["1_servers"] if c[key]]
        threes = [c[key] for c in results["3_servers"] if c[key]]
        if ones and threes:
            results[f"{key}_median"] = {"1": statistics.median(ones), "3": statistics.median(threes)}
            results[f"{key}_3_over_1"] = statistics.median(threes) / statistics.median(ones)
    return results


# ---------------------------------------------------------------- the smallest store beside the largest


def baseline_stage(
    admin: str, big_url: str, big_size: int, small_size: int, args: argparse.Namespace, directory: Path, warm: bool
) -> dict[str, Any]:
    """The smallest step's store, built again set-based in a second database of the same
    PostgreSQL (``<scratch>_baseline``), and the largest one measured in alternating rounds,
    each with its own server: both see the same machine load, so their ratio is not the load's
    drift between steps taken minutes apart (this machine is shared)."""
    name = f"{SCRATCH}_baseline"
    admin_engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    small_url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    small = sa.create_engine(small_url)
    out: dict[str, Any] = {"small_artifacts": small_size, "large_artifacts": big_size, "rounds": []}
    try:
        urls = {"small": small_url, "large": big_url}
        with contextlib.ExitStack() as stack:
            serve = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--workers", "1"]
            servers = {
                label: stack.enter_context(
                    running([*serve, "--database", url], directory / f"server-baseline-{label}.log")
                )
                for label, url in urls.items()
            }
            channels = {label: stubs(f"127.0.0.1:{server.port}") for label, server in servers.items()}
            types = put_types(channels["small"][1])
            out["load"] = load_sql(small, types, 0, small_size)
            if warm:
                out["prewarm"] = prewarm(small)
            sizes = {"small": small_size, "large": big_size}
            for r in range(args.baseline_rounds):
                order = ["small", "large"] if r % 2 == 0 else ["large", "small"]
                cell: dict[str, dict[str, float]] = {}
                for label in order:
                    _, stub, lineage = channels[label]
                    cell[label] = {
                        k: v["median_ms"]
                        for k, v in measure(stub, lineage, sizes[label], args.reps, args.seed + r).items()
                    }
                out["rounds"].append(cell)
                ratios = {k: round(cell["large"][k] / cell["small"][k], 2) for k in cell["large"]}
                log(f"  baseline round {r}: large / small {json.dumps(ratios)}")
            for channel, _, _ in channels.values():
                channel.close()
    finally:
        small.dispose()
        if not args.keep:
            with admin_engine.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin_engine.dispose()
    names = list(out["rounds"][0]["small"]) if out["rounds"] else []
    out["median_ms"] = {
        label: {k: statistics.median(c[label][k] for c in out["rounds"]) for k in names} for label in ("small", "large")
    }
    out["ratio_large_over_small"] = {
        k: statistics.median(c["large"][k] / c["small"][k] for c in out["rounds"]) for k in names
    }
    return out


# ---------------------------------------------------------------- one backend


def run_backend(
    backend: str, sizes: list[int], args: argparse.Namespace, directory: Path, out: dict[str, Any]
) -> dict[str, Any]:
    """Grow one store through `sizes`, measuring at each; fills and returns `out`."""
    out |= {"sizes": sizes, "steps": []}
    smallest = min(sizes)  # (before --reuse drops the sizes a kept store is past)
    private = backend == "postgresql" and not args.pg_shared_server
    warm = private if args.prewarm is None else args.prewarm
    with contextlib.ExitStack() as stack:
        admin = None
        huge_pages = 0
        if private:
            root = (args.workdir or Path(tempfile.gettempdir())) / "lineagedb-scale-pg"
            instance = ScalePostgres(root, private_settings(args), args.reuse)
            huge_before = huge_pages_taken()
            instance.start()
            huge_pages = huge_pages_taken() - huge_before
            stack.callback(instance.close, args.keep)
            admin = instance.url()
            log(f"{backend}: private PostgreSQL in {root} on port {instance.port}: {instance.settings}")
        if backend == "mysql" and args.mysql_buffer_pool != "as-is":
            out["mysql_buffer_pool"] = stack.enter_context(mysql_buffer_pool(args.mysql_buffer_pool))
            log(f"{backend}: innodb_buffer_pool_size {out['mysql_buffer_pool']}")
        url = stack.enter_context(scratch(backend, args.workdir or directory, args.keep, args.reuse, admin))
        command = [str(LINEAGEDB), "serve", "--host", "127.0.0.1", "--port", "0", "--database", url, "--workers", "1"]
        engine = sa.create_engine(url)
        if backend == "postgresql":
            out["postgres"] = {
                "server": f"private instance started by bench/scale.py ({PG_BIN})" if private else server_url(backend),
                "settings": pg_settings(engine),
                "prewarm": warm,
            }
            if private:
                out["postgres"]["huge_pages_2mb_taken"] = huge_pages
                if not huge_pages:
                    log(
                        f"{backend}: shared_buffers in 4 kB pages (no huge pages free: see vm.nr_hugepages"
                        " in bench/README.md); by-id reads at 10^7 pay page faults for it"
                    )
        s0 = 0
        types: dict[str, int] = {}
        if args.reuse:  # carry on from what the store holds
            schema = schema_for(engine.dialect.name)
            with engine.connect() as connection:
                s0 = int(connection.execute(sa.select(sa.func.max(schema.artifact.c.id))).scalar_one() or 0)
                types = {n: int(i) for i, n in connection.execute(sa.select(schema.type.c.id, schema.type.c.name))}
            sizes = [size for size in sizes if size >= s0]
            out["sizes"] = sizes
            log(f"{backend}: reusing a store of {s0} artifacts; sizes {sizes}")
        try:
            for size in sizes:
                step: dict[str, Any] = {"artifacts": size}
                with running(command, directory / f"server-{backend}-{size}.log") as server:
                    channel, stub, lineage = stubs(f"127.0.0.1:{server.port}")
                    with channel:
                        if not types:
                            types = put_types(stub)
                        api_end = min(size, args.api_max) if s0 == 0 else s0
                        if api_end > s0:
                            log(f"{backend}: API load of {api_end - s0} artifacts")
                            step["api_load"] = load_api(stub, types, api_end)
                            s0 = api_end
                            if backend == "postgresql":  # as the set-based steps, and autovacuum would
                                step["api_load"]["vacuum_analyze_s"] = vacuum_analyze(engine)
                        if size > s0:
                            log(f"{backend}: set-based load of artifacts {s0}..{size}")
                            step["sql_load"] = load_sql(engine, types, s0, size)
                            s0 = size
                    # A fresh server per step, as after a restart: nothing cached from the load.
                if warm:
                    step["prewarm"] = prewarm(engine)
                    log(
                        f"{backend} {size}: prewarmed {step['prewarm']['warmed_bytes'] / 2**30:.2f} GiB"
                        f" in {step['prewarm']['seconds']:.0f} s; skipped"
                        f" {[r['relation'] for r in step['prewarm']['skipped']]}"
                    )
                if args.skip_reads:
                    continue
                with running(command, directory / f"server-{backend}-{size}-read.log") as server:
                    channel, stub, lineage = stubs(f"127.0.0.1:{server.port}")
                    with channel:
                        step["check_problems"] = check(stub, types, size, random.Random(size))
                        step["rss_idle_bytes"] = rss_bytes(server.process.pid)
                        log(f"{backend} {size}: measuring")
                        counted = backend == "postgresql" and statements_reset(engine)
                        step["reads"] = measure(stub, lineage, size, args.reps, args.seed)
                        if counted:
                            step["pg_statements"] = statements_top(engine)
                        step["rss_after_reads_bytes"] = rss_bytes(server.process.pid)
                step["disk_bytes"] = disk_bytes(engine, backend, url)
                out["steps"].append(step)
                log(f"{backend} {size}: {json.dumps({k: round(v['median_ms'], 1) for k, v in step['reads'].items()})}")
                if step["check_problems"]:
                    log(f"{backend} {size}: CHECK FAILED {step['check_problems'][:3]}")
                if args.on_step:
                    args.on_step()
            if private and args.baseline_rounds and admin and s0 > smallest:
                log(f"{backend}: {smallest} beside {s0} artifacts, {args.baseline_rounds} alternating rounds")
                out["baseline"] = baseline_stage(admin, url, s0, smallest, args, directory, warm)
                if args.on_step:
                    args.on_step()
            if backend == "postgresql" and args.concurrency:
                log(f"{backend}: 1 and 3 servers, {args.clients} clients")
                out["concurrency"] = concurrency_stage(
                    url,
                    engine,
                    s0,
                    args.clients,
                    args.seconds,
                    directory,
                    args.split_pool,
                    args.rounds,
                    args.pool_size,
                    args.client_rate,
                    args.clients_per_server,
                )
        finally:
            engine.dispose()
    if not out["steps"]:
        return out
    first, last = out["steps"][0], out["steps"][-1]
    out["ratios_last_over_first"] = {
        name: last["reads"][name]["median_ms"] / first["reads"][name]["median_ms"] for name in first["reads"]
    }
    return out


def table(results: dict[str, Any]) -> list[str]:
    lines = []
    for backend, result in results["backends"].items():
        steps = result["steps"]
        if not steps:
            continue
        header = f"{backend}: median ms | " + " | ".join(f"{s['artifacts']:.0e}" for s in steps) + " | last/first"
        lines.append(header)
        for name in steps[0]["reads"]:
            cells = " | ".join(f"{s['reads'][name]['median_ms']:.1f}" for s in steps)
            lines.append(f"  {name:<44} {cells} | {result['ratios_last_over_first'][name]:.2f}x")
        for s in steps:
            load = s.get("api_load") or {}
            sql = s.get("sql_load") or {}
            lines.append(
                f"  {s['artifacts']:.0e}: rss {s['rss_after_reads_bytes'] / 2**20:.0f} MiB, disk "
                f"{(s['disk_bytes'] or 0) / 2**30:.2f} GiB, api {load.get('artifacts_per_s', 0):.0f} artifacts/s, "
                f"sql {sql.get('rows_per_s', 0):.0f} rows/s in {sql.get('seconds', 0):.0f} s"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="postgresql,sqlite,mysql")
    parser.add_argument("--sizes", help="comma-separated artifact counts, for every backend (multiples of 20)")
    parser.add_argument("--max", type=int, default=None, help="drop sizes above this")
    parser.add_argument("--api-max", type=int, default=10**5, help="artifacts loaded through the API (first step)")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--reuse", action="store_true", help="start from the store a --keep run left (with --workdir on SQLite)"
    )
    parser.add_argument("--no-concurrency", dest="concurrency", action="store_false")
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument(
        "--skip-reads", action="store_true", help="load (or --reuse) and run the concurrency stage only"
    )
    parser.add_argument("--split-pool", action="store_true", help="the 3 servers share one server's pool budget")
    parser.add_argument("--rounds", type=int, default=3, help="alternating 1/3-server rounds")
    parser.add_argument("--pool-size", type=int, default=0, help="--pool-size of every server in the 1/3-server stage")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--clients-per-server",
        action="store_true",
        help="--clients for each server in the 1/3-server stage (the same load per server), not in all",
    )
    parser.add_argument(
        "--client-rate",
        type=float,
        default=0.0,
        help="calls per second of each client in the 1/3-server stage (0: back to back, saturating the machine)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "scale_results.json")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="the private PostgreSQL goes here too (must be open to `postgres`)"
    )
    parser.add_argument(
        "--pg-shared-server",
        action="store_true",
        help="use the machine's PostgreSQL (LINEAGEDB_BENCH_POSTGRES_URL) as configured, not a private instance",
    )
    parser.add_argument("--pg-shared-buffers", help="the private instance's shared_buffers (default: RAM / 4)")
    parser.add_argument(
        "--mysql-buffer-pool",
        default="auto",
        help="MariaDB/MySQL innodb_buffer_pool_size in bytes for the run, put back afterwards "
        "(auto: RAM / 4; as-is: leave the server alone)",
    )
    parser.add_argument(
        "--pg-effective-cache-size", help="the private instance's effective_cache_size (default: RAM * 3/4)"
    )
    parser.add_argument(
        "--pg-setting", action="append", default=[], metavar="NAME=VALUE", help="more private-instance settings"
    )
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=5,
        help="private PostgreSQL: rounds alternating the smallest size (rebuilt beside) and the largest (0: none)",
    )
    parser.add_argument(
        "--prewarm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pg_prewarm the node tables and indexes after each load (default: on the private instance)",
    )
    args = parser.parse_args(argv)
    document: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "backends": {},
    }

    def save() -> None:
        args.out.write_text(json.dumps(document, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="lineagedb-scale-", dir=args.workdir) as tmp:
        for backend in args.backends.split(","):
            private = backend == "postgresql" and not args.pg_shared_server
            reason = private_unavailable() if private else unreachable(backend)
            if reason:
                log(f"{backend} skipped: {reason}")
                continue
            sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else DEFAULT_SIZES[backend]
            sizes = [s for s in sizes if args.max is None or s <= args.max]
            if any(s % data.ARTIFACTS_PER_RUN for s in sizes):
                parser.error(f"sizes must be multiples of {data.ARTIFACTS_PER_RUN}")
            partial: dict[str, Any] = {"steps": []}
            document["backends"][backend] = partial
            args.on_step = save
            run_backend(backend, sizes, args, Path(tmp), partial)
            save()
    document["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    save()
    print("\n".join(table(document)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The routing rules of store.replicas without a database: freshness from samples, the lag bound,
the caller's write position, the caller-address table's bounds; and refused configurations."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from lineagedb.store.replicas import BEHIND_CALLER, LAGGING, NO_REPLICA_UP, Replica, ReplicaSet, _freshness
from tests.ops.conftest import run_to_exit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica_set(clock: Clock, *names: str, max_lag_s: float = 5.0) -> ReplicaSet:
    engine = sa.create_engine("sqlite://")  # never connected: the rules only read what probes stored
    return ReplicaSet(engine, [Replica(name, engine) for name in names], max_lag_s, clock=clock)


def test_freshness_caught_up_behind_and_older_than_every_sample() -> None:
    samples = [(10.0, 100), (11.0, 200), (12.0, 300)]
    assert _freshness(samples, 300, 12.5) == (12.0, 0.0, 0)
    # Replayed 200: holds what the primary had at 11.0; behind since 12.0, when 300 appeared.
    assert _freshness(samples, 250, 12.5) == (11.0, 0.5, 50)
    fresh_as_of, lag, behind = _freshness(samples, 50, 12.5)
    assert fresh_as_of is None and lag == 2.5 and behind == 250


def test_choose_skips_down_lagging_and_behind_the_callers_write() -> None:
    clock = Clock()
    replicas = replica_set(clock, "r1")
    replica = replicas.replicas[0]
    assert replicas.choose(0) == (None, NO_REPLICA_UP)
    replica.up, replica.replay_lsn, replica.fresh_as_of = True, 500, clock.now
    assert replicas.choose(500) == (replica, None)
    assert replicas.choose(501) == (None, BEHIND_CALLER)
    clock.now += 5.0
    assert replicas.choose(0) == (replica, None)  # exactly at the bound
    clock.now += 0.1
    assert replicas.choose(0) == (None, LAGGING)
    assert replicas.primary_reads == {NO_REPLICA_UP: 1, BEHIND_CALLER: 1, LAGGING: 1}
    assert replica.reads == 2


def test_caller_entries_are_kept_until_every_usable_replica_must_have_replayed_them() -> None:
    clock = Clock()
    replicas = replica_set(clock, "r1", max_lag_s=5.0)
    replicas.note_peer_write("ipv4:10.0.0.1", 150)
    replicas.note_peer_write("ipv4:10.0.0.1", 120)  # an older position never lowers the entry
    assert replicas.peer_lsn("ipv4:10.0.0.1") == 150
    assert replicas.peer_lsn("ipv4:10.0.0.2") == 0
    replicas._samples.extend([(clock.now, 100), (clock.now + 1, 200)])
    clock.now += 5.5  # the primary's position 5 s ago was 100: not yet past the write
    replicas._forget_replayed_peers()
    assert replicas.peer_lsn("ipv4:10.0.0.1") == 150
    clock.now += 1.0  # ... and now 200: any replica allowed to serve has replayed 150
    replicas._forget_replayed_peers()
    assert replicas.peers_remembered() == 0 and replicas.peer_lsn("ipv4:10.0.0.1") == 0


def test_caller_table_overflow_folds_into_a_floor_for_everyone() -> None:
    clock = Clock()
    replicas = replica_set(clock, "r1")
    replicas._peers.limit = 2
    replicas.note_peer_write("a", 10)
    replicas.note_peer_write("b", 30)
    replicas.note_peer_write("c", 20)  # "a" folds into the floor
    assert replicas.peers_remembered() == 2
    assert replicas.peer_lsn("a") == 10 and replicas.peer_lsn("unknown") == 10
    assert replicas.peer_lsn("b") == 30


def test_read_database_needs_a_postgresql_primary_and_postgresql_replicas(tmp_path: Path) -> None:
    sqlite = f"sqlite:///{tmp_path}/primary.db"
    code, _, stderr = run_to_exit(
        ["serve", "--port", "0", "--database", sqlite, "--read-database", "postgresql://u:secret@h/db"], tmp_path
    )
    assert code == 2 and "--read-database needs a PostgreSQL primary" in stderr
    assert "secret" not in stderr
    # Checked before any connection: nothing listens on port 1.
    primary = "postgresql://u@127.0.0.1:1/db"
    code, _, stderr = run_to_exit(
        ["serve", "--port", "0", "--database", primary, "--read-database", "mysql://u:secret@h/db"], tmp_path
    )
    assert code == 2 and "read replicas must be PostgreSQL streaming replicas" in stderr
    assert "secret" not in stderr
    code, _, stderr = run_to_exit(
        ["serve", "--port", "0", "--database", primary],
        tmp_path,
        env={
            "LINEAGEDB_READ_DATABASE": "postgresql://u@127.0.0.1:1/a, postgresql://u@127.0.0.1:1/b",
            "LINEAGEDB_READ_MAX_LAG_S": "0",
        },
    )
    assert code == 2 and "--read-max-lag-s must be a positive number" in stderr

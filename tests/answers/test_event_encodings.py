"""Lineage answers encode events straight from their rows (repositories.lineage.to_events):
the bytes must be exactly what serializing the messages edges.rows_to_events builds gives,
for every shape of row and path, on every backend, read once or again from the cache."""

from __future__ import annotations

import sqlalchemy as sa

from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.store import encoded_cache
from lineagedb.store.repositories import edges as edge_repo
from lineagedb.store.repositories import lineage as lineage_repo
from lineagedb.store.repositories.lineage import EventRow
from lineagedb.store.unit_of_work import Database

# (artifact_id, execution_id, type, milliseconds_since_epoch, path steps as (is_index, index, key)).
EVENTS = [
    (1, 2, mlmd.Event.INPUT, 1_000, [(False, None, "examples"), (True, 0, None)]),
    (3, 2, mlmd.Event.OUTPUT, None, []),  # no time, no path
    # Type 0, negative and 32-bit extreme indexes.
    (4, 5, mlmd.Event.UNKNOWN, 0, [(True, -1, None), (True, -(2**31), None), (True, 2**31 - 1, None)]),
    (3_000_000, 2**31 - 1, mlmd.Event.PENDING_OUTPUT, 1_700_000_000_000, [(False, "", "")]),
    (6, 7, mlmd.Event.DECLARED_INPUT, -5, [(False, None, None), (False, None, "schlüssel ✓" * 20)]),
    (8, 9, mlmd.Event.INTERNAL_OUTPUT, 2, [(True, None, None), (False, None, "k"), (True, 127, None)]),
    (10, 11, mlmd.Event.OUTPUT, 3, [(True, 128, None), (True, 16_383, None), (True, 16_384, None)]),
]


def _write(database: Database) -> list[tuple[int, int, int, int, int | None]]:
    """The events, written in the tables as stored; their rows in EventTuple order."""
    schema = database.schema
    with database.engine.begin() as connection:
        for artifact_id, execution_id, event_type, time_ms, steps in EVENTS:
            event_id = connection.execute(
                sa.insert(schema.event).values(
                    artifact_id=artifact_id,
                    execution_id=execution_id,
                    type=event_type,
                    milliseconds_since_epoch=time_ms,
                )
            ).inserted_primary_key[0]
            for is_index, index, key in steps:
                connection.execute(
                    sa.insert(schema.event_path).values(
                        event_id=event_id,
                        is_index_step=is_index,
                        step_index=index if is_index else None,
                        step_key=None if is_index else key,
                    )
                )
        e = schema.event
        columns = (e.c.id, e.c.artifact_id, e.c.execution_id, e.c.type, e.c.milliseconds_since_epoch)
        rows = connection.execute(sa.select(*columns).order_by(e.c.id))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_encoded_events_are_the_serialized_messages_byte_for_byte(database: Database) -> None:
    rows = _write(database)
    encoded_cache.forget(database.engine)
    with database.transaction(write=False) as uow:
        built = edge_repo.rows_to_events(uow, [EventRow(*row) for row in rows])
        expected = [encoded_cache.delimited(event.SerializeToString()) for event in built]
        assert len([event for event in built if event.path.steps]) == 6  # the paths were read
        assert lineage_repo._encoded_events(uow, rows) == expected
        # Through the cache: a first read (nothing kept), then again (kept where settled),
        # as a list, into a repeated field, and into a response's Field.
        for _ in range(2):
            assert [event.SerializeToString() for event in lineage_repo.to_events(uow, rows)] == [
                event.SerializeToString() for event in built
            ]
            graph = mlmd.LineageGraph()
            lineage_repo.to_events(uow, rows, into=graph.events)
            assert list(graph.events) == built
            response = pb.ClosureResponse()
            assert lineage_repo.to_events(uow, rows[::-1], encoded_cache.Field(response, "events")) == []
            assert list(response.events) == built[::-1]
    kept = encoded_cache.for_engine(database.engine, "event").entries
    # Every row with a time at least SETTLED_MS old is kept from its first read; none without.
    assert sorted(kept) == sorted(row[0] for row in rows if row[4] is not None)


def test_varint_is_protobufs_for_every_length() -> None:
    mask = (1 << 64) - 1
    values = [2**bits + delta for bits in range(64) for delta in (-1, 0, 1)] + [0, -1, -(2**31), -(2**63)]
    for value in values:
        assert lineage_repo.varint(value) == encoded_cache.varint(value & mask), value
        event = mlmd.Event(milliseconds_since_epoch=value) if value < 2**63 else None
        if event is not None:  # the field's bytes after its tag
            assert event.SerializeToString() == b"\x28" + lineage_repo.varint(value), value

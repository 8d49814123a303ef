"""MLMD's property value indexes end with the owner's id on PostgreSQL (migration 0012).

MLMD indexes every property table by (name, is_custom_property, value), one index per value
column (`idx_artifact_property_int`, ..._double, ..._string, and the same for executions and
contexts). A filter's page wants its matches in id order: `properties.span.int_value = 7`,
first page of 20 by id. PostgreSQL keeps equal values in heap order, so the planner either
reads every match and sorts them, or walks the node table in id order and probes the property
table per node until the page is full. Which one wins depends on how many match: on the
10^7-artifact benchmark store (bench/scale.py) a filter matching 1% of artifacts walked
2,000-4,000 nodes for its first page of 20 (~19,000 buffer hits, 6.6 ms in the database),
against 0.9 ms on the 10^5 store where it sorted its 1,000 matches. With the owner's id as the
index's last column one value's matches come in id order, and the page is a merge join that
stops after its first 21 index entries: 0.6 ms at 10^7 (117 buffer hits), with parallel plans
off (store.engine SERIAL_PLANS; under a Gather Merge the same plan took 15 ms).

MySQL/MariaDB need nothing: InnoDB appends the primary key (owner id, name,
is_custom_property) to every secondary index entry, so equal values already come in owner
order. SQLite's pages do not read matches in index order (store.repositories.listing probes
them, then walks the node table testing each row, or reads them by id): widened there, the
benchmark's broad filter pages took the same time (2.7 ms either way at 10^6, in process).

Each index keeps its name and replaces the narrower one (store.widened_indexes): a property
write maintains as many B-trees as before. Index only: a server on 0011 serves as before and
logs the `lineagedb db upgrade` command.
"""

from __future__ import annotations

from lineagedb.store.widened_indexes import WidenedIndex

_OWNERS = {"artifact": "artifact_id", "execution": "execution_id", "context": "context_id"}

WIDENED: tuple[WidenedIndex, ...] = tuple(
    WidenedIndex(
        f"idx_{kind}_property_{value}",
        f"{kind}_property",
        ("name", "is_custom_property", f"{value}_value"),
        ("name", "is_custom_property", f"{value}_value", owner),
        dialects=("postgresql",),
    )
    for kind, owner in _OWNERS.items()
    for value in ("int", "double", "string")
)

"""MLMD's property value indexes end with the owner's id (migration 0012).

MLMD indexes every property table by (name, is_custom_property, value), one index per value
column (`idx_artifact_property_int`, ..._double, ..._string, and the same for executions and
contexts). A filter's page wants its matches in id order: `properties.span.int_value = 7`,
first page of 20 by id. With equal values in no particular order (PostgreSQL keeps them in
heap order; SQLite in rowid order), the planner either reads every match and sorts them, or
walks the node table in id order and probes the property table per node until the page is
full. Which one wins depends on how many match: on the 10^7-artifact benchmark store
(bench/scale.py) a filter matching 1% of artifacts walked 2,000-4,000 nodes for its first page
of 20 (~20,000 buffer hits, 6-9 ms), against 0.9 ms on the 10^5 store where it sorted its 1,000
matches. With the owner's id as the index's last column the matches of one value come in id
order, so the page takes its first 21 index entries whatever the store's size.

On MySQL/MariaDB nothing changes: InnoDB appends the primary key (owner id, name,
is_custom_property) to every secondary index entry, so equal values already come in owner
order there.

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
        # As MLMD's SQLite schema declares them: only rows holding that kind of value.
        sqlite_where=f"{value}_value IS NOT NULL",
        dialects=("postgresql", "sqlite"),
    )
    for kind, owner in _OWNERS.items()
    for value in ("int", "double", "string")
)

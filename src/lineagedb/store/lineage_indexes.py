"""The link indexes lineage answers read whole (migration 0011).

Provenance lists every attribution and association of its closure, and Impact every context
its closure is in: for a 10,000-node closure, 13,000 attribution and 6,700 association rows,
read by node id (`repositories.lineage`). The indexes 0002 made for those reads hold the node
id only, so every row found was then looked up in the table for its context id, a second
B-tree search per row on SQLite. With the context id in the index (after the node id, so the
node id reads are as before) the reads are answered by the index alone and come out in the
(node, context) order the answers want, with no sort.

Measured on the 100,000-artifact benchmark store (bench/lineage_answers.py), thread CPU of the
statements alone: SQLite 9.3 -> 5.2 ms (attributions) and 4.5 -> 2.6 ms (associations) for
Provenance, 6.4 -> 3.7 ms for Impact's context reads; PostgreSQL 18 -> 15 ms and 8.5 -> 7.5 ms
once vacuumed (index-only scans need the visibility map; freshly loaded, about the same as
before). Each index replaces one of 0002 under the same name, so a write maintains as many
B-trees as before, each entry one integer wider.

The event reads of a walk were measured the same way and left alone: indexes covering
(artifact or execution id, type, the other id, time) saved SQLite 1.3-2.3 ms of a 15.5 ms
walk and PostgreSQL nothing measurable, for two more B-trees written with every event.
"""

from __future__ import annotations

from lineagedb.store.widened_indexes import WidenedIndex

WIDENED: tuple[WidenedIndex, ...] = (
    WidenedIndex(
        "lineagedb_idx_attribution_artifact_id", "attribution", ("artifact_id",), ("artifact_id", "context_id")
    ),
    WidenedIndex(
        "lineagedb_idx_association_execution_id", "association", ("execution_id",), ("execution_id", "context_id")
    ),
)

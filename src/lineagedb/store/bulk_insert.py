"""Multi-row INSERTs without SQLAlchemy's per-row parameter machinery.

Profiling PutArtifacts showed SQLAlchemy spending more time preparing each row's
parameters for `executemany` than SQLite spent inserting them. On SQLite the
statement text and the column types' bind processors are therefore taken from
SQLAlchemy once per (table, columns) and the rows go to the driver as tuples.
Other backends keep SQLAlchemy's batched "insertmanyvalues" path, which already
sends many rows per round trip (psycopg2's plain executemany would not), except a
small deferrable INSERT on MySQL/MariaDB, which travels with the transaction's next
statement (UnitOfWork.defer) with its values through the same bind processors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from lineagedb.store.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class _Plan:
    sql: str
    columns: tuple[str, ...]
    # (position, processor) for the columns whose type converts values on the way in.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]


@functools.cache
def insert_statement(table: sa.Table, returning_ids: bool = False) -> sa.Insert:
    """INSERTs are built once per table: each call then only binds its rows."""
    statement = sa.insert(table)
    return statement.returning(table.c.id, sort_by_parameter_order=True) if returning_ids else statement


# Rows of one INSERT small enough to travel with another statement (MySQL/MariaDB, `deferrable`).
DEFER_MAX_ROWS = 200


def insert_rows(
    uow: UnitOfWork,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    ignore_duplicates: bool = False,
    deferrable: bool = False,
) -> None:
    """INSERT `rows` (dicts with the same keys) into `table`; with `ignore_duplicates`
    (SQLite only) rows whose unique key exists already are skipped. `deferrable`: nothing
    depends on this INSERT's result, so on MySQL/MariaDB it may travel with the
    transaction's next statement or its COMMIT (UnitOfWork.defer); its rows are still
    there for every later statement of the transaction."""
    if not rows:
        return
    uow.note_inserted(table, len(rows))
    if deferrable and defer_rows(uow, table, rows):
        return
    if uow.dialect != "sqlite":
        assert not ignore_duplicates, "each server backend has its own form of INSERT ignoring duplicates"
        uow.execute(insert_statement(table), rows)
        return
    plan = _plan(table, uow.connection.dialect, tuple(rows[0]), ignore_duplicates)
    uow.execute_driver_sql(plan.sql, _processed(plan, rows))


def defer_rows(
    uow: UnitOfWork, table: sa.Table, rows: Sequence[Mapping[str, Any]], absorb_duplicates: bool = False
) -> bool:
    """MySQL/MariaDB: `rows` as one multi-row INSERT that travels with the transaction's next
    statement or its COMMIT (UnitOfWork.defer); False where that does not apply (another
    driver, a read, more than DEFER_MAX_ROWS rows), and the caller sends them itself.
    `absorb_duplicates`: rows whose unique key exists are absorbed by a no-op update of the
    first column (INSERT IGNORE would hide other errors too)."""
    if len(rows) > DEFER_MAX_ROWS or not uow.can_defer:
        return False
    plan = _plan(table, uow.connection.dialect, tuple(rows[0]), False)
    row_sql = "(" + ", ".join(["%s"] * len(plan.columns)) + ")"
    sql = f"{plan.sql} VALUES {', '.join([row_sql] * len(rows))}"
    if absorb_duplicates:
        first = uow.connection.dialect.identifier_preparer.quote(plan.columns[0])
        sql += f" ON DUPLICATE KEY UPDATE {first} = VALUES({first})"
    uow.defer(sql, _processed(plan, rows, flat=True))
    return True


def defer_integer_rows(
    uow: UnitOfWork,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[tuple[int, ...]],
    shared: Mapping[str, Any],
) -> None:
    """MySQL/MariaDB (`uow.can_defer`): INSERT `rows`, whose `columns` hold this server's own
    integers, with the `shared` columns' values the same in every row, as deferred multi-row
    INSERTs of at most DEFER_MAX_ROWS rows. The integers are written with `:d` (which refuses
    anything else) and the shared values quoted by the driver once: quoting every value of a
    100-row INSERT through PyMySQL took ~0.2 ms (an audit record's node rows, a new node's
    membership rows)."""
    plan = _plan(table, uow.connection.dialect, (*columns, *shared), False)
    same = uow.bind(", " + ", ".join(["%s"] * len(shared)) + ")", tuple(shared.values()))
    uow.note_inserted(table, len(rows))
    for start in range(0, len(rows), DEFER_MAX_ROWS):
        values = ", ".join(
            "(" + ", ".join(f"{number:d}" for number in row) + same for row in rows[start : start + DEFER_MAX_ROWS]
        )
        uow.defer_bound(f"{plan.sql} VALUES {values}")


def _processed(plan: _Plan, rows: Sequence[Mapping[str, Any]], flat: bool = False) -> list[Any]:
    """The rows' values in the plan's column order, through the column types' bind
    processors: a tuple per row, or (`flat`) all values in one list."""
    columns, processors = plan.columns, plan.processors
    params: list[Any] = []
    for row in rows:
        values = [row[column] for column in columns]
        for position, process in processors:
            if values[position] is not None:
                values[position] = process(values[position])
        if flat:
            params += values
        else:
            params.append(tuple(values))
    return params


@functools.lru_cache(maxsize=128)
def _plan(table: sa.Table, dialect: sa.Dialect, keys: tuple[str, ...], ignore_duplicates: bool) -> _Plan:
    """SQLite: the whole INSERT with qmark placeholders. Other dialects (deferred MySQL
    INSERTs): the INSERT up to its VALUES, which the caller appends for its rows."""
    if dialect.name != "sqlite":
        quote = dialect.identifier_preparer.quote
        sql = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({', '.join(map(quote, keys))})"
        return _Plan(sql, keys, _processors(table, dialect, keys))
    statement = sqlite_dialect.insert(table).on_conflict_do_nothing() if ignore_duplicates else sa.insert(table)
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    # qmark placeholders: the driver takes values in the order SQLAlchemy rendered them.
    columns = tuple(compiled.positiontup or ())
    return _Plan(compiled.string, columns, _processors(table, dialect, columns))


def _processors(
    table: sa.Table, dialect: sa.Dialect, columns: tuple[str, ...]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    processors = []
    for position, column in enumerate(columns):
        process = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((position, process))
    return tuple(processors)

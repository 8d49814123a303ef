"""Hot reads straight from the SQLite driver, with SQL that SQLAlchemy compiled.

Profiling by-id reads showed SQLAlchemy's per-execution work (rendering expanding
IN lists, building the execution context, wrapping every row) costing as much as
SQLite's own: about a third of a 100-artifact read. For the few statements on
every read path (nodes and properties by id, events per lineage hop, type rows),
SQLAlchemy still builds and compiles the statement, once per dialect; each call
then only renders its id lists as `?` placeholders, runs the text on the driver's
cursor and applies the columns' result processors (the same functions SQLAlchemy
would apply) to the values that need them.

Only on SQLite: on PostgreSQL and MySQL the network round trip dominates and the
statement keeps SQLAlchemy's full path (deadlines, dialect quirks).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.store.unit_of_work import UnitOfWork

_POSTCOMPILE = "__[POSTCOMPILE_{}]"


@dataclass(frozen=True)
class _Plan:
    # The SQL split around each expanding placeholder: len(pieces) == len(expanding) + 1.
    pieces: tuple[str, ...]
    # Parameter names in placeholder order, and which of them are lists.
    names: tuple[str, ...]
    expanding: frozenset[str]
    # Values the statement carries itself (a compiled filter's literals).
    bound: Mapping[str, Any]
    # Bind processors of the parameters whose type converts values on the way in.
    converters: Mapping[str, Callable[[Any], Any]]
    # (column position, processor) for result columns whose type converts values.
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]


def rows(uow: UnitOfWork, statement: sa.Select[Any], parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
    """The rows of `statement` (built once by the caller) as tuples, columns in select order."""
    if uow.dialect != "sqlite":
        return list(uow.execute(statement, parameters).all())
    plan = _plan(statement, uow.connection.dialect)
    if plan is None:
        return list(uow.execute(statement, parameters).all())
    sql: list[str] = [plan.pieces[0]]
    values: list[Any] = []
    piece = 1
    for name in plan.names:
        value = parameters[name] if name in parameters else plan.bound[name]
        convert = plan.converters.get(name)
        if convert is not None:
            value = [convert(v) for v in value] if name in plan.expanding else convert(value)
        if name in plan.expanding:
            # SQLAlchemy renders an empty list as a never-true subquery; so do we.
            sql.append(", ".join("?" * len(value)) if value else "SELECT 1 WHERE 1 != 1")
            sql.append(plan.pieces[piece])
            piece += 1
            values.extend(value)
        else:
            values.append(value)
    found = uow.fetch_driver_sql("".join(sql), values)
    if not plan.processors:
        return found
    processed = []
    for row in found:
        mutable = list(row)
        for position, process in plan.processors:
            if mutable[position] is not None:
                mutable[position] = process(mutable[position])
        processed.append(mutable)
    return processed


@functools.lru_cache(maxsize=256)
def _plan(statement: sa.Select[Any], dialect: sa.Dialect) -> _Plan | None:
    """How to run `statement` on the driver; None for a statement with parameters
    rendered in ways this module does not reproduce (SQLAlchemy then runs it)."""
    compiled = statement.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    expanding = frozenset(name for name in names if compiled.binds[name].expanding)
    bound = {name: compiled.binds[name].effective_value for name in names if not compiled.binds[name].required}
    text = compiled.string
    pieces: list[str] = []
    for name in names:
        if name in expanding:
            # Expanding placeholders appear once each, in parameter order.
            before, text = text.split(_POSTCOMPILE.format(name), 1)
            pieces.append(before)
    pieces.append(text)
    if any("__[POSTCOMPILE_" in piece for piece in pieces):
        return None
    converters = {}
    for name in names:
        bind = compiled.binds[name]
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters[name] = _keep_none(convert)
    processors = []
    for position, column in enumerate(statement.selected_columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            processors.append((position, process))
    return _Plan(tuple(pieces), names, expanding, bound, converters, tuple(processors))


def _keep_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)

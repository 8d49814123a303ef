"""Hot reads straight from the driver, with SQL that SQLAlchemy compiled.

Profiling by-id reads showed SQLAlchemy's per-execution work (rendering expanding
IN lists, building the execution context, wrapping every row) costing as much as
SQLite's own: about a third of a 100-artifact read. For the statements on every
read path (nodes and properties by id, events per lineage hop, type rows, listing
pages), SQLAlchemy still builds and compiles the statement, once per dialect; each
call then only renders its id lists as placeholders, runs the text on the driver's
cursor inside the unit of work's transaction, and applies the columns' result
processors and the parameters' bind processors (the functions SQLAlchemy would
apply) to the values that need them.

The three drivers differ only in placeholders: `?` (sqlite3), `%s` (PyMySQL) and
`%(name)s` (psycopg2). A statement this module cannot reproduce exactly (a
parameter SQLAlchemy renders inline, or an empty id list on a server backend) runs
through SQLAlchemy as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.store.unit_of_work import UnitOfWork

_EXPANDING = re.compile(r"\(__\[POSTCOMPILE_(\w+)\]\)")


@dataclass(frozen=True)
class _Plan:
    # The SQL split around each expanding "(list)" placeholder, and the list parameter
    # at each split: len(pieces) == len(lists) + 1.
    pieces: tuple[str, ...]
    lists: tuple[str, ...]
    # Positional drivers: every parameter in placeholder order, and the placeholder mark.
    positional: bool
    order: tuple[str, ...]
    mark: str
    # Values the statement carries itself (a compiled filter's literals).
    bound: Mapping[str, Any]
    # Bind processors of the parameters whose type converts values on the way in.
    converters: Mapping[str, Callable[[Any], Any]]
    # Result column types; their processors are resolved at the first execution, from the
    # driver's type codes (PostgreSQL's numeric processors depend on them).
    column_types: tuple[Any, ...]
    processors: list[tuple[tuple[int, Callable[[Any], Any]], ...]]


def rows(
    uow: UnitOfWork, statement: sa.Select[Any] | sa.CompoundSelect, parameters: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """The rows of `statement` (built once by the caller) as tuples, columns in select order."""
    plan = _plan(statement, uow.connection.dialect)
    if plan is None or (uow.dialect != "sqlite" and any(not parameters.get(name, 1) for name in plan.lists)):
        return list(uow.execute(statement, parameters).all())
    values = {name: _value(plan, name, parameters) for name in plan.order}
    sql = [plan.pieces[0]]
    for name, piece in zip(plan.lists, plan.pieces[1:], strict=True):
        items = values[name]  # a list may appear more than once (namespace checks on both ends)
        if plan.positional:
            marks = ", ".join([plan.mark] * len(items))
        else:
            keys = [f"{name}__{i}" for i in range(len(items))]
            values.update(zip(keys, items, strict=True))
            marks = ", ".join(f"%({key})s" for key in keys)
        # SQLAlchemy renders an empty list as a never-true subquery; so do we (SQLite only).
        sql.append(f"({marks})" if items else "(SELECT 1 WHERE 1 != 1)")
        sql.append(piece)
    if not plan.positional:
        for name in plan.lists:
            values.pop(name, None)  # replaced by the numbered keys above
    arguments: Sequence[Any] | Mapping[str, Any]
    if plan.positional:
        flat: list[Any] = []
        for name in plan.order:
            value = values[name]
            if name in plan.lists:
                flat.extend(value)
            else:
                flat.append(value)
        arguments = flat
    else:
        arguments = values
    found, description = uow.fetch_driver_sql("".join(sql), arguments)
    if not plan.processors:
        plan.processors.append(_result_processors(plan, uow.connection.dialect, description))
    processors = plan.processors[0]
    if not processors:
        return found
    processed = []
    for row in found:
        mutable = list(row)
        for position, process in processors:
            if mutable[position] is not None:
                mutable[position] = process(mutable[position])
        processed.append(mutable)
    return processed


def _value(plan: _Plan, name: str, parameters: Mapping[str, Any]) -> Any:
    value = parameters[name] if name in parameters else plan.bound[name]
    convert = plan.converters.get(name)
    if convert is None:
        return list(value) if name in plan.lists else value
    return [convert(v) for v in value] if name in plan.lists else convert(value)


@functools.lru_cache(maxsize=512)
def _plan(statement: sa.Select[Any] | sa.CompoundSelect, dialect: sa.Dialect) -> _Plan | None:
    """How to run `statement` on the driver; None for a statement with parameters
    rendered in ways this module does not reproduce (SQLAlchemy then runs it)."""
    compiled = statement.compile(dialect=dialect)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    text = compiled.string
    lists = tuple(_EXPANDING.findall(text))
    pieces = tuple(_EXPANDING.split(text)[::2])
    if "__[POSTCOMPILE_" in "".join(pieces) or any(name not in binds for name in lists):
        return None  # a literal_execute parameter or an unexpected placeholder shape
    positional = bool(compiled.positional)
    if positional:
        order = tuple(compiled.positiontup or ())
        mark = {"qmark": "?", "format": "%s"}.get(dialect.paramstyle)
        if mark is None:
            return None
    else:
        if dialect.paramstyle != "pyformat":
            return None
        order, mark = tuple(binds), ""
    bound = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    converters = {}
    for name, bind in binds.items():
        convert = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            converters[name] = _keep_none(convert)
    column_types = tuple(column.type for column in statement.selected_columns)
    return _Plan(pieces, lists, positional, order, mark, bound, converters, column_types, [])


def _result_processors(
    plan: _Plan, dialect: sa.Dialect, description: Sequence[Any] | None
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    codes = [entry[1] for entry in description] if description else [None] * len(plan.column_types)
    processors = []
    for position, (column_type, code) in enumerate(zip(plan.column_types, codes, strict=True)):
        process = column_type.dialect_impl(dialect).result_processor(dialect, code)
        if process is not None:
            processors.append((position, process))
    return tuple(processors)


def _keep_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)

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
`%(name)s` (psycopg2). On PostgreSQL an id list is one array parameter instead
(`id = ANY(%(ids)s::BIGINT[])`, sent as the array's text form): the driver then quotes
one value instead of a hundred, about a quarter of the client CPU of a 100-id
statement, and the SQL text no longer depends on the list's length. PostgreSQL itself
turns an IN list into the same `= ANY(array)` before planning. A statement this module cannot reproduce exactly (a
parameter SQLAlchemy renders inline, or an empty id list on a server backend) runs
through SQLAlchemy as before.

On PostgreSQL the statements whose text is the same for every call (no id lists, or
lists as arrays) run as server-side prepared statements (store.prepared): parsing and
planning the namespace checks cost more of the server's time than running them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lineagedb.store import prepared
from lineagedb.store.unit_of_work import UnitOfWork

# An execution option a statement carries when its reader only tests its Boolean columns
# for truth: their values then come back as the driver gives them (0/1 on SQLite and MySQL),
# without a conversion per row.
TRUTHY_BOOLEANS = "lineagedb_truthy_booleans"

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
    # PostgreSQL: each list's array type (its pieces then end in "= ANY" / "<> ALL").
    arrays: Mapping[str, str]
    # The statement's reader only tests its Boolean columns for truth (TRUTHY_BOOLEANS), so
    # the 0/1 that SQLite and MySQL return need no conversion.
    truthy_booleans: bool
    # PostgreSQL: the statement's prepared forms (store.prepared), by the types of a call's values.
    prepared_forms: dict[tuple[Any, ...], prepared.Statement]
    # `bound`, converted as `_value` would (a parameter of the call's own still wins).
    constants: dict[str, Any]
    # The SQL by the lengths of its lists (positional drivers, see _positional_sql), or
    # under () its one text with arrays (PostgreSQL, see _array_sql).
    texts: dict[tuple[int, ...], str]


def rows(
    uow: UnitOfWork,
    statement: sa.Select[Any] | sa.CompoundSelect | sa.Insert,
    parameters: Mapping[str, Any],
    prefix: str = "",
) -> Sequence[Sequence[Any]]:
    """The rows of `statement` (built once by the caller) as tuples, columns in select order.
    An INSERT ... RETURNING too (its RETURNING columns), from PostgreSQL writes. `prefix`:
    SQL text of the caller's own to put before the statement (MariaDB's SET STATEMENT ... FOR);
    such a statement must be one this module runs (not PostgreSQL's, no empty list)."""
    plan = _plan(statement, uow.connection.dialect)
    if plan is None or (uow.dialect != "sqlite" and any(not parameters.get(name, 1) for name in plan.lists)):
        if prefix:
            raise ValueError("a statement with a prefix must be one store.fast_read runs itself")
        return list(uow.execute(statement, parameters).all())
    values = _values(plan, parameters)
    if prefix:
        sql, arguments = _driver_sql(plan, values)
        return _finish(uow, plan, prefix + sql, arguments)
    if plan.arrays or (not plan.lists and uow.dialect == "postgresql"):
        text = _array_sql(plan, values) if plan.arrays else plan.pieces[0]
        found = prepared.fetch(uow, plan.prepared_forms, text, values, plan.bound, parameters, plan.arrays)
        if found is not None:
            return _processed(uow, plan, *found)
        return _finish(uow, plan, text, values)
    return _finish(uow, plan, *_driver_sql(plan, values))


def read_ahead(
    uow: UnitOfWork,
    statement: sa.Select[Any] | sa.CompoundSelect,
    parameters: Mapping[str, Any],
    deliver: Callable[[Sequence[Sequence[Any]]], None],
) -> bool:
    """`rows`, delivered later: MySQL/MariaDB send the read with the write transaction's next
    statement, in its round trip (UnitOfWork.read_ahead). False where that cannot be done (another
    backend, a read transaction, a statement SQLAlchemy must run): the caller reads now."""
    if not uow.can_defer:
        return False
    plan = _plan(statement, uow.connection.dialect)
    if plan is None or plan.arrays or any(not parameters.get(name, 1) for name in plan.lists):
        return False
    sql, arguments = _driver_sql(plan, _values(plan, parameters))
    uow.read_ahead(sql, arguments, lambda found, description: deliver(_processed(uow, plan, found, description)))
    return True


def _values(plan: _Plan, parameters: Mapping[str, Any]) -> dict[str, Any]:
    # The statement's own constants (a namespace check's node kind, say) were converted once.
    constants = plan.constants
    return {name: _value(plan, name, parameters) if name in parameters else constants[name] for name in plan.order}


def _driver_sql(plan: _Plan, values: dict[str, Any]) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    """The SQL for the driver's placeholders and its arguments (not PostgreSQL's arrays)."""
    if plan.positional:
        return _positional_sql(plan, values), _flat(plan, values)
    sql = [plan.pieces[0]]
    for name, piece in zip(plan.lists, plan.pieces[1:], strict=True):
        items = values[name]  # a list may appear more than once (namespace checks on both ends)
        keys = [f"{name}__{i}" for i in range(len(items))]
        values.update(zip(keys, items, strict=True))
        marks = ", ".join(f"%({key})s" for key in keys)
        sql.append(f"({marks})" if items else _EMPTY_LIST)
        sql.append(piece)
    for name in plan.lists:
        values.pop(name, None)  # replaced by the numbered keys above
    return "".join(sql), values


# SQLAlchemy renders an empty list as a never-true subquery; so do we (SQLite only).
_EMPTY_LIST = "(SELECT 1 WHERE 1 != 1)"
_TEXTS_PER_PLAN = 64


def _positional_sql(plan: _Plan, values: Mapping[str, Any]) -> str:
    """The SQL with each list's placeholders, kept per combination of list lengths: a
    scoped statement has two lists (its ids and the readable namespaces), and rendering
    them on every call was most of what the namespace check added to a lineage hop's
    Python on SQLite."""
    lengths = tuple(len(values[name]) for name in plan.lists)
    text = plan.texts.get(lengths)
    if text is not None:
        return text
    sql = [plan.pieces[0]]
    for count, piece in zip(lengths, plan.pieces[1:], strict=True):
        sql.append(f"({', '.join([plan.mark] * count)})" if count else _EMPTY_LIST)
        sql.append(piece)
    text = "".join(sql)
    if len(plan.texts) < _TEXTS_PER_PLAN:  # id lists come in every length up to the chunk size
        plan.texts[lengths] = text
    return text


def _flat(plan: _Plan, values: Mapping[str, Any]) -> list[Any]:
    """Positional drivers: every value in placeholder order, lists spread out."""
    flat: list[Any] = []
    lists = plan.lists
    for name in plan.order:
        value = values[name]
        if name in lists:
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _finish(
    uow: UnitOfWork, plan: _Plan, sql: str, arguments: Sequence[Any] | Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    return _processed(uow, plan, *uow.fetch_driver_sql(sql, arguments))


def _processed(
    uow: UnitOfWork, plan: _Plan, found: list[tuple[Any, ...]], description: Sequence[Any] | None
) -> Sequence[Sequence[Any]]:
    """`found` with the columns' result processors applied (where a value needs one)."""
    if not plan.processors:
        plan.processors.append(_result_processors(plan, uow.connection.dialect, description))
    processors = plan.processors[0]
    if not processors:
        return found
    # Rows are copied only where a value needs converting: most processed columns of the
    # hot reads (a property's proto value, say) are NULL in most rows.
    processed: list[Sequence[Any]] = found  # type: ignore[assignment]
    for index, row in enumerate(found):
        mutable = None
        for position, process in processors:
            value = row[position]
            if value is not None:
                if mutable is None:
                    mutable = list(row)
                mutable[position] = process(value)
        if mutable is not None:
            processed[index] = mutable
    return processed


def _array_sql(plan: _Plan, values: dict[str, Any]) -> str:
    """PostgreSQL: the statement with one array parameter per list; `values` gets the arrays.
    The text does not depend on the lists' lengths: built once per statement."""
    text = plan.texts.get(())
    if text is None:
        sql = [plan.pieces[0]]
        for name, piece in zip(plan.lists, plan.pieces[1:], strict=True):
            sql.append(f"(%({name})s::{plan.arrays[name]})")
            sql.append(piece)
        text = plan.texts[()] = "".join(sql)
    for name, array_type in plan.arrays.items():
        items = values[name]
        if array_type == "BIGINT[]" and all(type(item) is int for item in items):
            # The array's text form: digits and commas only, so one quoted value to send.
            values[name] = "{" + ",".join(map(str, items)) + "}"
        elif array_type == "TEXT[]":
            # Text too (the readable namespaces of every scoped statement): as ARRAY['a','b']
            # the server evaluates an array constructor per EXECUTE, measured 5 us of a 50 us
            # lineage hop. Each element double-quoted, its `\` and `"` backslash-escaped (the
            # array input syntax), so any string, "NULL" included, reads back as itself.
            # Short lists are kept: a caller's namespaces go with every statement of its calls.
            key = tuple(items)
            text_form = _TEXT_ARRAYS.get(key)
            if text_form is None and all(type(item) is str for item in items):
                text_form = "{" + ",".join(map(_quoted_element, items)) + "}"
                if len(key) <= 16 and len(_TEXT_ARRAYS) < 1024:
                    _TEXT_ARRAYS[key] = text_form
            if text_form is not None:
                values[name] = text_form
        # Anything else stays a list, which the driver sends as ARRAY[...] (quoted items).
    return text


_TEXT_ARRAYS: dict[tuple[Any, ...], str] = {}


def _quoted_element(item: str) -> str:
    if '"' in item or "\\" in item:
        item = item.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{item}"'


def _value(plan: _Plan, name: str, parameters: Mapping[str, Any]) -> Any:
    value = parameters[name] if name in parameters else plan.bound[name]
    convert = plan.converters.get(name)
    if convert is None:
        return list(value) if name in plan.lists else value
    return [convert(v) for v in value] if name in plan.lists else convert(value)


@functools.lru_cache(maxsize=512)
def _plan(statement: sa.Select[Any] | sa.CompoundSelect | sa.Insert, dialect: sa.Dialect) -> _Plan | None:
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
    columns = statement.exported_columns if isinstance(statement, sa.Insert) else statement.selected_columns
    column_types = tuple(column.type for column in columns)
    arrays: dict[str, str] = {}
    if dialect.name == "postgresql" and not positional and lists:
        rewritten = _as_arrays(pieces, lists, binds)
        if rewritten is not None:
            pieces, arrays = rewritten
    if arrays:
        # A parameter that is an integer array in the SQL already (tenancy's id range, a
        # BIGINT[] bind) is sent in the same text form as the lists, and store.prepared counts
        # it as an array parameter (generic plans).
        arrays.update((name, "BIGINT[]") for name, bind in binds.items() if _bigint_array(bind.type))
    truthy = bool(statement.get_execution_options().get(TRUTHY_BOOLEANS))
    plan = _Plan(
        pieces, lists, positional, order, mark, bound, converters, column_types, [], arrays, truthy, {}, {}, {}
    )
    plan.constants.update((name, _value(plan, name, {})) for name in bound)
    return plan


_ARRAY_TYPES = ((sa.Integer, "BIGINT[]"), (sa.String, "TEXT[]"))  # BigInteger, SmallInteger and Text included
_MEMBERSHIP = ((" NOT IN ", " <> ALL"), (" IN ", " = ANY"))


def _as_arrays(
    pieces: tuple[str, ...], lists: tuple[str, ...], binds: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """`x IN (list)` as `x = ANY(array)` (NOT IN as `<> ALL`): the same rows, NULLs
    included; None when a list is not a plain IN of integers or text."""
    rewritten = list(pieces)
    arrays: dict[str, str] = {}
    for index, name in enumerate(lists):
        bind_type = binds[name].type
        if isinstance(bind_type, sa.TypeDecorator):  # e.g. MLMDText: its values still go through its converter
            bind_type = bind_type.impl_instance
        array_type = next((a for t, a in _ARRAY_TYPES if isinstance(bind_type, t)), None)
        if isinstance(bind_type, sa.Enum):  # a native enum does not compare with text
            array_type = None
        ending = next(((old, new) for old, new in _MEMBERSHIP if rewritten[index].endswith(old)), None)
        if array_type is None or ending is None or arrays.get(name, array_type) != array_type:
            return None
        rewritten[index] = rewritten[index][: -len(ending[0])] + ending[1]
        arrays[name] = array_type
    return tuple(rewritten), arrays


def _bigint_array(bind_type: Any) -> bool:
    return isinstance(bind_type, sa.ARRAY) and isinstance(bind_type.item_type, sa.Integer)


def _result_processors(
    plan: _Plan, dialect: sa.Dialect, description: Sequence[Any] | None
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    codes = [entry[1] for entry in description] if description else [None] * len(plan.column_types)
    processors = []
    for position, (column_type, code) in enumerate(zip(plan.column_types, codes, strict=True)):
        if plan.truthy_booleans and isinstance(column_type, sa.Boolean):
            continue
        process = column_type.dialect_impl(dialect).result_processor(dialect, code)
        if process is not None:
            processors.append((position, process))
    return tuple(processors)


def _keep_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)

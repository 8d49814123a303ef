"""MLflow's registry search: filter text, order_by clauses and page tokens, over loaded records.

The registry's searches (registered models, model versions) accept a small language: clauses
`<key> <op> <value>` joined by AND, ops =, !=, LIKE, ILIKE (with % and _), IN and NOT IN over a
parenthesised list. Keys are attributes (`name`, `run_id`, ...) or `tags.<key>` (back-quoted
when it holds other characters). The records are evaluated in memory: a registry holds few
entries next to runs (they are read in one set-based statement per search), and this keeps the
language identical on every backend.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lineagedb import errors

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>!=|<=|>=|=|<|>)
    | (?P<punct>[(),])
    | (?P<ident>(?:`[^`]*`|[A-Za-z_][\w]*)(?:\.(?:`[^`]*`|[\w]+))*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"LIKE", "ILIKE", "IN"}


@dataclass(frozen=True)
class Clause:
    key: str  # attribute name, or "tags.<key>"
    op: str  # =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN
    value: Any  # str, int, float, or a tuple of them for IN


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise errors.InvalidArgumentError(f"Invalid filter string {text!r}: cannot parse it at {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _key(ident: str) -> str:
    parts = re.findall(r"`[^`]*`|[^.`]+", ident)
    parts = [p[1:-1] if p.startswith("`") else p for p in parts]
    if len(parts) >= 2 and parts[0].lower() in ("tags", "tag"):
        return "tags." + ".".join(parts[1:])
    return ".".join(parts)


def parse_filter(text: str, attributes: Sequence[str]) -> list[Clause]:
    """Parse `text` into clauses over `attributes` (or tags); INVALID_ARGUMENT on anything else."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    clauses: list[Clause] = []
    i = 0

    def bad(why: str) -> errors.InvalidArgumentError:
        return errors.InvalidArgumentError(f"Invalid filter string {text!r}: {why}")

    while True:
        if i >= len(tokens) or tokens[i][0] != "ident":
            raise bad("expected a key such as name or tags.<key>")
        key = _key(tokens[i][1])
        if not key.startswith("tags.") and key not in attributes:
            raise bad(f"invalid attribute key {key!r}; valid keys are {', '.join(attributes)} and tags.<key>")
        i += 1
        if i >= len(tokens):
            raise bad("expected a comparison after the key")
        kind, token = tokens[i]
        if kind == "op":
            op = token
        elif kind == "ident" and token.upper() in _WORD_OPS:
            op = token.upper()
        elif kind == "ident" and token.upper() == "NOT" and i + 1 < len(tokens) and tokens[i + 1][1].upper() == "IN":
            op = "NOT IN"
            i += 1
        else:
            raise bad(f"unknown comparison {token!r}")
        i += 1
        if op in ("IN", "NOT IN"):
            values: list[Any] = []
            if i >= len(tokens) or tokens[i][1] != "(":
                raise bad(f"{op} needs a parenthesised list")
            i += 1
            while i < len(tokens) and tokens[i][1] != ")":
                kind, token = tokens[i]
                if kind == "string":
                    values.append(_unquote(token))
                elif kind == "number":
                    values.append(token)
                elif token != ",":
                    raise bad(f"unexpected {token!r} in a list")
                i += 1
            if i >= len(tokens):
                raise bad("unclosed list")
            i += 1
            value: Any = tuple(values)
        else:
            if i >= len(tokens) or tokens[i][0] not in ("string", "number"):
                raise bad("expected a quoted value or a number")
            kind, token = tokens[i]
            value = _unquote(token) if kind == "string" else token
            i += 1
        clauses.append(Clause(key, op, value))
        if i >= len(tokens):
            return clauses
        if tokens[i][0] != "ident" or tokens[i][1].upper() != "AND":
            raise bad(f"expected AND, got {tokens[i][1]!r}")
        i += 1


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL | (re.IGNORECASE if ignore_case else 0)) is not None


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("LIKE", "ILIKE"):
        return left is not None and _like(str(right), str(left), op == "ILIKE")
    if op in ("IN", "NOT IN"):
        inside = left is not None and str(left) in {str(v) for v in right}
        return inside if op == "IN" else not inside
    if left is None:
        return op == "!="
    if isinstance(left, int) and not isinstance(left, bool):
        try:
            right = int(right)
        except ValueError as error:
            raise errors.InvalidArgumentError(f"expected a number to compare with, got {right!r}") from error
    else:
        right = str(right)
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def matches(clauses: Sequence[Clause], fields: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    for clause in clauses:
        left = tags.get(clause.key[5:]) if clause.key.startswith("tags.") else fields.get(clause.key)
        if not _compare(clause.op, left, clause.value):
            return False
    return True


@dataclass(frozen=True)
class OrderKey:
    field: str
    ascending: bool


def parse_order_by(clauses: Sequence[str], aliases: Mapping[str, str]) -> list[OrderKey]:
    """`name ASC`, `timestamp DESC`, ...: each clause's field must be one of `aliases` (mapped)."""
    keys: list[OrderKey] = []
    for clause in clauses:
        parts = clause.strip().split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise errors.InvalidArgumentError(f"Invalid order_by clause {clause!r}")
        field = aliases.get(parts[0].strip("`"))
        if field is None:
            raise errors.InvalidArgumentError(
                f"Invalid order by key {parts[0]!r}; valid keys are {', '.join(sorted(aliases))}"
            )
        keys.append(OrderKey(field, len(parts) == 1 or parts[1].upper() == "ASC"))
    return keys


def sort(records: list[Any], keys: Sequence[OrderKey], value: Callable[[Any, str], Any]) -> list[Any]:
    """Stable multi-key sort: apply the least significant key first."""
    for key in reversed(keys):
        field = key.field
        records.sort(key=lambda record: value(record, field), reverse=not key.ascending)
    return records


def page(records: list[Any], max_results: int, token: str) -> tuple[list[Any], str]:
    """One page from `token` (an opaque offset) and the next page's token ("" when done)."""
    offset = 0
    if token:
        try:
            offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
        except (ValueError, KeyError, TypeError, binascii.Error) as error:
            raise errors.InvalidArgumentError("Invalid page token, could not base64-decode") from error
        if offset < 0:
            raise errors.InvalidArgumentError("Invalid page token")
    chosen = records[offset : offset + max_results]
    after = offset + max_results
    next_token = (
        base64.urlsafe_b64encode(json.dumps({"offset": after}).encode()).decode() if after < len(records) else ""
    )
    return chosen, next_token

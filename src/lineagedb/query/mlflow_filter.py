"""MLflow's search syntax for runs: `filter` strings and `order_by` clauses, parsed to values.

The grammar is MLflow's (documented in its "Search Runs" guide): comparisons joined by AND,
each `<entity>.<key> <comparator> <value>` where the entity is metrics, params, tags,
attributes or datasets (with MLflow's alternate spellings), the key plain, "double-quoted"
or `backticked`, and the value a number (metrics, numeric attributes), a quoted string, or
a parenthesised list of them (IN, NOT IN: attributes.run_id and the datasets' keys).
Errors are ValueError with a message for the caller (INVALID_PARAMETER_VALUE).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Entity = Literal["metric", "param", "tag", "attribute", "dataset"]

_ENTITIES: dict[str, Entity] = {
    "metric": "metric",
    "metrics": "metric",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "tag": "tag",
    "tags": "tag",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "dataset": "dataset",
    "datasets": "dataset",
}
# Run attributes a filter or order_by may name (MLflow's searchable ones), by canonical name.
STRING_ATTRIBUTES = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "lifecycle_stage"})
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
_ATTRIBUTE_ALIASES = {"created": "start_time", "Created": "start_time", "run_uuid": "run_id"}
_NUMERIC_COMPARATORS = frozenset({"=", "!=", ">", ">=", "<", "<="})
_STRING_COMPARATORS = frozenset({"=", "!=", "LIKE", "ILIKE"})
# A run's datasets (its inputs): name, digest, and the input's mlflow.data.context tag.
DATASET_KEYS = ("name", "digest", "context")
_DATASET_COMPARATORS = frozenset({"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"})

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<backtick>`[^`]*`)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<paren>[(),])
    | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.]))
    | (?P<word>[A-Za-z_][\w.\-]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Comparison:
    entity: Entity
    key: str
    comparator: str  # =, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN
    value: float | str | tuple[str, ...]


@dataclass(frozen=True)
class OrderKey:
    entity: Entity
    key: str
    ascending: bool


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"Invalid filter {text!r}: cannot read it at position {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


def _unquote(token: _Token) -> str:
    body = token.text[1:-1]
    if token.kind == "string":
        return re.sub(r"\\(.)", r"\1", body)
    return body


def _identifier(tokens: list[_Token], at: int, text: str) -> tuple[Entity, str, int]:
    """(entity, key, next position) of `entity.key`, the key possibly quoted."""
    if at >= len(tokens) or tokens[at].kind != "word":
        raise ValueError(f"Invalid filter {text!r}: expected an identifier such as metrics.<key>")
    word = tokens[at].text
    prefix, dot, rest = word.partition(".")
    entity = _ENTITIES.get(prefix.lower())
    if entity is None or not dot:
        raise ValueError(
            f"Invalid identifier {word!r}: expected an entity prefix metrics., params., tags. or attributes."
        )
    if rest:
        return entity, rest, at + 1
    if at + 1 < len(tokens) and tokens[at + 1].kind in ("string", "backtick"):
        return entity, _unquote(tokens[at + 1]), at + 2
    raise ValueError(f"Invalid identifier {word!r}: the key is missing")


def canonical_attribute(key: str) -> str:
    name = _ATTRIBUTE_ALIASES.get(key, key)
    if name not in STRING_ATTRIBUTES and name not in NUMERIC_ATTRIBUTES:
        allowed = sorted(STRING_ATTRIBUTES | NUMERIC_ATTRIBUTES)
        raise ValueError(f"Invalid attribute key '{key}' specified. Valid keys are '{allowed}'")
    return name


def parse_filter(text: str) -> list[Comparison]:
    """The AND-ed comparisons of an MLflow filter string (empty: none)."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    comparisons: list[Comparison] = []
    at = 0
    while True:
        entity, key, at = _identifier(tokens, at, text)
        if entity == "attribute":
            key = canonical_attribute(key)
        elif entity == "dataset" and key not in DATASET_KEYS:
            raise ValueError(f"Invalid dataset key '{key}' specified. Valid keys are '{list(DATASET_KEYS)}'")
        comparator, at = _comparator(tokens, at, text)
        value, at = _value(tokens, at, text, entity, key, comparator)
        comparisons.append(Comparison(entity, key, comparator, value))
        if at == len(tokens):
            return comparisons
        word = tokens[at].text.upper() if tokens[at].kind == "word" else ""
        if word != "AND":
            if word == "OR":
                raise ValueError(f"Invalid filter {text!r}: only AND is supported between comparisons, not OR")
            raise ValueError(f"Invalid filter {text!r}: expected AND after a comparison")
        at += 1


def _comparator(tokens: list[_Token], at: int, text: str) -> tuple[str, int]:
    if at >= len(tokens):
        raise ValueError(f"Invalid filter {text!r}: a comparator is missing")
    token = tokens[at]
    if token.kind == "op":
        return token.text, at + 1
    if token.kind == "word":
        word = token.text.upper()
        if word in ("LIKE", "ILIKE", "IN"):
            return word, at + 1
        if word == "NOT" and at + 1 < len(tokens) and tokens[at + 1].text.upper() == "IN":
            return "NOT IN", at + 2
    raise ValueError(f"Invalid filter {text!r}: {token.text!r} is not a comparator")


def _value(
    tokens: list[_Token], at: int, text: str, entity: Entity, key: str, comparator: str
) -> tuple[float | str | tuple[str, ...], int]:
    numeric = entity == "metric" or (entity == "attribute" and key in NUMERIC_ATTRIBUTES)
    if entity == "dataset" and comparator not in _DATASET_COMPARATORS:
        raise ValueError(f"Invalid comparator '{comparator}' not one of '{sorted(_DATASET_COMPARATORS)}'")
    if comparator in ("IN", "NOT IN"):
        if entity != "dataset" and (entity != "attribute" or key != "run_id"):
            raise ValueError(
                f"Invalid comparator '{comparator}': IN and NOT IN apply to attributes.run_id and datasets only"
            )
        return _value_list(tokens, at, text)
    if at >= len(tokens):
        raise ValueError(f"Invalid filter {text!r}: a value is missing")
    token = tokens[at]
    if numeric:
        if comparator not in _NUMERIC_COMPARATORS:
            raise ValueError(
                f"Invalid comparator '{comparator}' not one of '{sorted(_NUMERIC_COMPARATORS)}' for {entity} '{key}'"
            )
        if token.kind != "number":
            raise ValueError(f"Expected numeric value type for {entity} '{key}'. Found {token.text}")
        return float(token.text), at + 1
    if comparator not in _STRING_COMPARATORS:
        raise ValueError(
            f"Invalid comparator '{comparator}' not one of '{sorted(_STRING_COMPARATORS)}' for {entity} '{key}'"
        )
    if token.kind != "string":
        raise ValueError(f"Value must be a quoted string for {entity} '{key}'. Found {token.text}")
    return _unquote(token), at + 1


def _value_list(tokens: list[_Token], at: int, text: str) -> tuple[tuple[str, ...], int]:
    if at >= len(tokens) or tokens[at].text != "(":
        raise ValueError(f"Invalid filter {text!r}: IN needs a parenthesised list of quoted strings")
    values: list[str] = []
    at += 1
    while at < len(tokens):
        token = tokens[at]
        if token.kind != "string":
            raise ValueError(f"Invalid filter {text!r}: IN lists hold quoted strings")
        values.append(_unquote(token))
        at += 1
        if at < len(tokens) and tokens[at].text == ",":
            at += 1
            continue
        if at < len(tokens) and tokens[at].text == ")":
            return tuple(values), at + 1
        break
    raise ValueError(f"Invalid filter {text!r}: an IN list is not closed")


def parse_order_by(clauses: list[str]) -> list[OrderKey]:
    """`metrics.acc DESC`, `params.lr`, `attributes.start_time ASC`, ... (ascending unless DESC)."""
    keys: list[OrderKey] = []
    for clause in clauses:
        tokens = _tokens(clause)
        entity, key, at = _identifier(tokens, 0, clause)
        if entity == "dataset":
            raise ValueError(f"Invalid order_by clause {clause!r}: datasets cannot be ordered by")
        if entity == "attribute":
            key = canonical_attribute(key)
        ascending = True
        if at < len(tokens):
            word = tokens[at].text.upper()
            if word not in ("ASC", "DESC") or at + 1 != len(tokens):
                raise ValueError(f"Invalid order_by clause {clause!r}: expected ASC or DESC after the key")
            ascending = word == "ASC"
        keys.append(OrderKey(entity, key, ascending))
    return keys

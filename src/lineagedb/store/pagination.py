"""ListOperationOptions: page size, ordering, and MLMD-format page tokens (spec §5).

A token is the URL-safe, unpadded base64 of a serialized ListOperationNextPageToken,
byte-identical to the ones MLMD issues, so a client may page across either server.

Continuation is a true keyset over (order column, id): `(col > v) OR (col = v AND
id > last_id)` ascending. MLMD's own predicates can skip rows whose ids are not
monotonic in time (CREATE_TIME) or repeat rows that share a timestamp across more
than one page (LAST_UPDATE_TIME); ours do neither, and they read MLMD's tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from google.protobuf.message import DecodeError

from lineagedb import errors
from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd

# MLMD fetches at most this many rows per page, whatever max_result_size says (§5.2).
MAX_FETCH = 101

# URL-safe base64, optionally padded: anything else is "failed to decode" (MLMD uses absl's
# strict WebSafeBase64Unescape; Python's decoder would silently drop foreign characters).
_TOKEN_TEXT = re.compile(r"[A-Za-z0-9_-]*={0,2}")

_Field = mlmd.ListOperationOptions.OrderByField
_COLUMNS: dict[int, str] = {
    _Field.ID: "id",
    _Field.CREATE_TIME: "create_time_since_epoch",
    _Field.LAST_UPDATE_TIME: "last_update_time_since_epoch",
}


@dataclass(frozen=True)
class Page:
    """A validated page request."""

    options: mlmd.ListOperationOptions
    size: int
    field: int
    ascending: bool
    token: mlmd.ListOperationNextPageToken | None

    @property
    def column(self) -> str:
        return _COLUMNS[self.field]

    @property
    def filter_query(self) -> str:
        return self.options.filter_query


def _ordering(options: mlmd.ListOperationOptions) -> tuple[int, bool]:
    order = options.order_by_field
    return order.field, order.is_asc


def parse_page(options: mlmd.ListOperationOptions, key: bytes | None = None) -> Page:
    """Validate `options`; with a `key` (authentication on) the token must carry its signature."""
    if options.max_result_size <= 0:
        raise errors.InvalidArgumentError(f"max_result_size must be positive, got {options.max_result_size}")
    field, ascending = _ordering(options)
    if field not in _COLUMNS:
        raise errors.InvalidArgumentError("order_by_field.field must be ID, CREATE_TIME or LAST_UPDATE_TIME")
    token = None
    if options.next_page_token:
        token = decode_token(_unsealed(options.next_page_token, key) if key is not None else options.next_page_token)
        if key is not None and token.set_options.filter_query != options.filter_query:
            # Signed tokens are bound to the query they continue (MLMD's own are not checked).
            raise errors.InvalidArgumentError("next_page_token was issued for a different filter_query")
        if _ordering(token.set_options) != (field, ascending):
            raise errors.InvalidArgumentError("next_page_token was issued for a different ordering (options mismatch)")
        if field == _Field.LAST_UPDATE_TIME and not token.listed_ids:
            raise errors.InvalidArgumentError("next_page_token has no listed_ids for LAST_UPDATE_TIME ordering")
    return Page(options, options.max_result_size, field, ascending, token)


def decode_token(text: str | bytes) -> mlmd.ListOperationNextPageToken:
    # proto2 strings with invalid UTF-8 reach us as bytes (upb does not validate them).
    if not isinstance(text, str) or _TOKEN_TEXT.fullmatch(text) is None:
        raise errors.InvalidArgumentError("failed to decode next_page_token")
    unpadded = text.rstrip("=")
    try:
        raw = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as error:
        raise errors.InvalidArgumentError("failed to decode next_page_token") from error
    token = mlmd.ListOperationNextPageToken()
    try:
        token.ParseFromString(raw)
    except DecodeError as error:
        raise errors.InvalidArgumentError("failed to parse next_page_token") from error
    return token


def _seal(text: str, key: bytes) -> str:
    mac = hmac.new(key, text.encode("ascii"), hashlib.sha256).digest()
    return f"{text}.{base64.urlsafe_b64encode(mac).decode('ascii').rstrip('=')}"


def _unsealed(text: str | bytes, key: bytes) -> str:
    """The MLMD token inside a signed one, if the signature is this caller's.

    With authentication on, a token is bound to the principal and the namespaces it
    may read (the key is derived from them), and to the whole query it continues
    (filter, ordering, position), so one replayed by someone else, or edited to skip
    a filter, is refused."""
    if not isinstance(text, str) or text.count(".") != 1:
        raise errors.InvalidArgumentError("next_page_token is not a token this server issued to this caller")
    body, _ = text.split(".")
    if not hmac.compare_digest(_seal(body, key), text):
        raise errors.InvalidArgumentError("next_page_token is not a token this server issued to this caller")
    return body


def encode_token(page: Page, rows: Sequence[Any], key: bytes | None = None) -> str:
    """Token for the page that ends with `rows[-1]` (rows carry id and the order column);
    signed for the caller when a `key` is given (see `_unsealed`)."""
    last = rows[-1]
    token = mlmd.ListOperationNextPageToken()
    options = mlmd.ListOperationOptions()
    options.CopyFrom(page.options)
    options.ClearField("next_page_token")
    if page.field == _Field.LAST_UPDATE_TIME:
        token.field_offset = last.sort_value
        for row in reversed(rows):
            if row.sort_value != last.sort_value:
                break
            token.listed_ids.append(row.id)
    else:
        token.id_offset = last.id
        token.field_offset = last.sort_value
    token.set_options.CopyFrom(options)
    text = base64.urlsafe_b64encode(token.SerializeToString()).decode("ascii").rstrip("=")
    return _seal(text, key) if key is not None else text


def keyset(
    field: int, ascending: bool, table: sa.Table, continued: bool
) -> tuple[list[sa.ColumnElement[bool]], list[sa.ColumnElement[Any]]]:
    """WHERE clauses continuing after a token, and the ORDER BY, for `table`.

    The clauses take the token's position as the bound parameters "after_value" and
    "after_id" (see `keyset_parameters`), so one statement serves every page.
    """
    column, node_id = table.c[_COLUMNS[field]], table.c.id
    direction = (lambda c: c.asc()) if ascending else (lambda c: c.desc())
    order = [direction(column)] if field == _Field.ID else [direction(column), direction(node_id)]
    if not continued:
        return [], order
    value, last_id = sa.bindparam("after_value", type_=sa.BigInteger), sa.bindparam("after_id", type_=sa.BigInteger)
    if field == _Field.ID:
        return [node_id > value if ascending else node_id < value], order
    if ascending:
        clause = sa.or_(column > value, sa.and_(column == value, node_id > last_id))
    else:
        clause = sa.or_(column < value, sa.and_(column == value, node_id < last_id))
    return [clause], order


def keyset_parameters(page: Page) -> dict[str, int]:
    """The values of `keyset`'s parameters for `page` (none on a first page)."""
    token = page.token
    if token is None:
        return {}
    if page.field == _Field.ID:
        return {"after_value": token.field_offset}
    last_id = token.listed_ids[0] if page.field == _Field.LAST_UPDATE_TIME else token.id_offset
    return {"after_value": token.field_offset, "after_id": last_id}

"""Encryption at rest of sensitive property values: keys, envelopes, the key registry, rotation.

What is sensitive, and who reads it in clear, is store.sensitive's business; this module
only turns plaintext into envelopes and back (AES-256-GCM, `cryptography`), knows which
keys the database was encrypted with, and re-encrypts it under another key.

Envelope (in a property row's `string_value`, see store.codecs):

    lineagedb:enc:v1:<key id>:<base64url(12-byte nonce | ciphertext | 16-byte tag)>

The associated data binds each ciphertext to the row it lives in (node kind, owner id,
custom flag, property name; see store.sensitive.property_aad) and to its key id, so a
ciphertext copied into another row, or relabelled with another key id, fails to decrypt
instead of showing another row's secret. Nonces are random: one key should encrypt
fewer than 2**32 values (NIST SP 800-38D), far beyond a metadata store's writes between
rotations.

Keys come from a `KeyProvider` (security.encryption reads them from a file or the
environment; a cloud KMS can be another provider). `lineagedb_encryption_key` (migration
0005) lists the key ids the database holds values under, each with a check value (a
fixed plaintext encrypted under that key), so a server started with a missing key, or
with other bytes under a known id, refuses to start instead of failing call by call or,
worse, writing values that nobody can read later.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import exc as sa_exc

from lineagedb import errors
from lineagedb.store.codecs import ENVELOPE_PREFIX

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
ENVELOPE_V1 = ENVELOPE_PREFIX + "v1:"
# Key ids appear in envelopes (':' separates) and in LIKE patterns, so no ':', '%' or '_'.
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}")
# The revision that creates the key registry (encryption needs it).
ENCRYPTION_REVISION = "0005"
_CHECK_PLAINTEXT = b"lineagedb encryption key check v1"


class KeyProvider(Protocol):
    """Where keys come from. The one implementation reads a key file or the environment
    (security.encryption.StaticKeyProvider); a KMS-backed one would unwrap data keys here."""

    def active_key_id(self) -> str:
        """The key new values are encrypted under."""
        ...

    def key(self, key_id: str) -> bytes | None:
        """The 32 bytes of key `key_id`, or None if the provider does not have it."""
        ...

    def key_ids(self) -> frozenset[str]:
        """Every key id the provider has (the active one among them)."""
        ...


class SealError(Exception):
    """An envelope cannot be opened. The message names the key id at most, never a value."""


@dataclass(frozen=True)
class Envelope:
    key_id: str
    sealed: bytes  # nonce | ciphertext | tag


def parse_envelope(text: str) -> Envelope:
    if not text.startswith(ENVELOPE_V1):
        raise SealError("not a version 1 envelope")
    key_id, sep, data = text[len(ENVELOPE_V1) :].partition(":")
    if not sep or KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise SealError("malformed envelope")
    try:
        sealed = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise SealError("malformed envelope") from None
    if len(sealed) < NONCE_BYTES + 16:
        raise SealError("malformed envelope")
    return Envelope(key_id, sealed)


def key_prefix(key_id: str) -> str:
    """The text every envelope under `key_id` starts with."""
    return f"{ENVELOPE_V1}{key_id}:"


class Keyring:
    """AES-GCM under the provider's keys; one cipher object per key, built on first use."""

    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        self.active_key_id = provider.active_key_id()
        self._ciphers: dict[str, AESGCM] = {}
        if self._cipher(self.active_key_id) is None:
            raise ValueError(f"the active key {self.active_key_id!r} is not in the key set")

    def has(self, key_id: str) -> bool:
        return self._cipher(key_id) is not None

    def key_ids(self) -> frozenset[str]:
        return self.provider.key_ids()

    def _cipher(self, key_id: str) -> AESGCM | None:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            key = self.provider.key(key_id)
            if key is None:
                return None
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} is not {KEY_BYTES} bytes")
            cipher = self._ciphers[key_id] = AESGCM(key)
        return cipher

    def seal(self, plaintext: bytes, associated: bytes, key_id: str | None = None) -> str:
        key_id = key_id or self.active_key_id
        cipher = self._cipher(key_id)
        if cipher is None:
            raise SealError(f"no key {key_id!r}")
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + cipher.encrypt(nonce, plaintext, _bound(key_id, associated))
        return key_prefix(key_id) + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(self, text: str, associated: bytes) -> bytes:
        envelope = parse_envelope(text)
        cipher = self._cipher(envelope.key_id)
        if cipher is None:
            raise SealError(f"the value is encrypted under key {envelope.key_id!r}, which is not configured")
        nonce, body = envelope.sealed[:NONCE_BYTES], envelope.sealed[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, _bound(envelope.key_id, associated))
        except InvalidTag:
            raise SealError(
                f"the value does not decrypt under key {envelope.key_id!r} (moved from another row, or altered)"
            ) from None

    def check_value(self, key_id: str) -> str:
        return self.seal(_CHECK_PLAINTEXT, _check_associated(key_id), key_id)

    def verifies(self, key_id: str, check_value: str) -> bool:
        try:
            return self.open(check_value, _check_associated(key_id)) == _CHECK_PLAINTEXT
        except SealError:
            return False

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(active={self.active_key_id!r}, keys={sorted(self.key_ids())})"


def _bound(key_id: str, associated: bytes) -> bytes:
    return key_id.encode("ascii") + b"\0" + associated


def _check_associated(key_id: str) -> bytes:
    return b"lineagedb:key-check:" + key_id.encode("ascii")


# -- the key registry (migration 0005) ---------------------------------------------------------

# LineageDB's own table, outside MLMD's MetaData like store.tenancy's.
METADATA = sa.MetaData()
KEYS = sa.Table(
    "lineagedb_encryption_key",
    METADATA,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("check_value", sa.String(255), nullable=False),
    sa.Column("create_time_since_epoch", sa.BigInteger, nullable=False),
)


def _property_tables(schema: Any) -> list[tuple[str, sa.Table, str]]:
    """(node kind, property table, owner column) for the three node kinds."""
    return [
        ("artifact", schema.artifact_property, "artifact_id"),
        ("execution", schema.execution_property, "execution_id"),
        ("context", schema.context_property, "context_id"),
    ]


def _holds_values_under(connection: sa.Connection, schema: Any, key_id: str) -> bool:
    """Whether any property row holds an envelope under `key_id` (a scan; run only when a
    registered key is missing from the configured set, i.e. once per retired key)."""
    for _, table, _ in _property_tables(schema):
        found = connection.execute(
            sa.select(sa.literal(1)).where(table.c.string_value.like(sa.bindparam("prefix"))).limit(1),
            {"prefix": key_prefix(key_id) + "%"},
        ).first()
        if found is not None:
            return True
    return False


def check_database_keys(engine: sa.Engine, keyring: Keyring | None, url_text: str) -> None:
    """At startup: every key the database holds values under is configured and is the same key
    (its check value decrypts); then the active key is registered. Raises
    FailedPreconditionError (the server refuses to start) saying what is wrong, never a key.

    A registered key that is no longer configured is fine once no value remains under it
    (after `lineagedb keys rotate`): its row is dropped. Without any keys configured, a
    database that holds encrypted values is refused too: serving would show ciphertext."""
    from lineagedb.store.schema import schema_for

    schema = schema_for(engine.dialect.name)
    with engine.connect() as connection:
        connection.info["lineagedb_write"] = True
        with connection.begin():
            registered = dict(connection.execute(sa.select(KEYS.c.key_id, KEYS.c.check_value)).all())
            for key_id, check_value in sorted(registered.items()):
                if keyring is not None and keyring.has(key_id):
                    if not keyring.verifies(key_id, check_value):
                        raise errors.FailedPreconditionError(
                            f"encryption key {key_id!r} is not the key this database's values were encrypted "
                            "with (its check value does not decrypt); configure the right key file"
                        )
                elif _holds_values_under(connection, schema, key_id):
                    if keyring is None:
                        raise errors.FailedPreconditionError(
                            f"the database at {url_text} holds values encrypted under key {key_id!r}, and no "
                            "encryption keys are configured (--encryption-keys-file or LINEAGEDB_ENCRYPTION_KEYS)"
                        )
                    raise errors.FailedPreconditionError(
                        f"the database at {url_text} holds values encrypted under key {key_id!r}, which is not "
                        f"in the configured key set ({', '.join(sorted(keyring.key_ids()))}); add it back "
                        "(and run `lineagedb keys rotate` before removing it)"
                    )
                else:
                    log.info("encryption key %r is no longer configured and no value uses it: forgetting it", key_id)
                    connection.execute(sa.delete(KEYS).where(KEYS.c.key_id == key_id))
    if keyring is not None and keyring.active_key_id not in registered:
        register_key(engine, keyring, keyring.active_key_id)


def register_key(engine: sa.Engine, keyring: Keyring, key_id: str) -> None:
    """Record `key_id` with its check value before any value is encrypted under it. Two
    processes may race to do it; the loser checks the winner's row instead."""
    row = {"key_id": key_id, "check_value": keyring.check_value(key_id), "create_time_since_epoch": _now_ms()}
    try:
        with engine.connect() as connection:
            connection.info["lineagedb_write"] = True
            with connection.begin():
                connection.execute(sa.insert(KEYS).values(**row))
        log.info("registered encryption key %r", key_id)
    except sa_exc.IntegrityError:
        with engine.connect() as connection:
            stored = connection.execute(sa.select(KEYS.c.check_value).where(KEYS.c.key_id == key_id)).scalar_one()
        if not keyring.verifies(key_id, stored):
            raise errors.FailedPreconditionError(
                f"encryption key {key_id!r} was just registered by another process with other key bytes"
            ) from None


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- rotation (`lineagedb keys rotate`) -------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0  # re-encrypted under the active key
    changed_meanwhile: int = 0  # rewritten by a server between our read and our update: left alone
    failed: dict[str, int] = field(default_factory=dict)  # reason (names a key id, never a value) -> rows
    remaining: dict[str, int] = field(default_factory=dict)  # key id ("?" unknown) -> envelopes still under it
    batches: int = 0


Aad = Callable[[str, int, bool, str], bytes]


@dataclass(frozen=True)
class _Batch:
    last: tuple[Any, ...] | None  # primary key of the batch's last row; None: no rows
    size: int
    rotated: int
    changed: int
    failed: dict[str, int]


def rotate(
    database: Any,
    keyring: Keyring,
    associated: Aad,
    batch_size: int = 500,
    attempts: int = 5,
) -> RotationReport:
    """Re-encrypt every envelope not under the active key, `batch_size` rows per transaction.

    Safe next to running servers: each batch is a short transaction of primary-key UPDATEs,
    and each UPDATE only replaces the envelope it read (`string_value = <old>`), so a
    value a server rewrote in between is left as the server wrote it. Rows are walked by
    primary key (owner, name, custom flag), so rows that cannot be re-encrypted are counted
    and passed, not retried forever. `database` is a store.unit_of_work.Database;
    `associated(kind, owner_id, is_custom, name)` gives a row's associated data.

    Registry rows of the old keys stay: a server started without an old key checks that
    no value remains under it before it forgets it (check_database_keys)."""
    register_key(database.engine, keyring, keyring.active_key_id)
    report = RotationReport()
    for kind, table, owner_name in _property_tables(database.schema):
        statements = _rotation_statements(table, owner_name, batch_size)
        last: tuple[Any, ...] | None = None
        while True:
            batch = _with_retries(
                attempts, functools.partial(_rotate_batch, database, keyring, associated, kind, statements, last)
            )
            if batch.last is None:
                break
            report.batches += 1
            report.rotated += batch.rotated
            report.changed_meanwhile += batch.changed
            for reason, count in batch.failed.items():
                report.failed[reason] = report.failed.get(reason, 0) + count
            last = batch.last
            if batch.size < batch_size:
                break
    report.remaining = remaining_envelopes(database, keyring)
    return report


@dataclass(frozen=True)
class _Statements:
    first: sa.Select[Any]
    after: sa.Select[Any]
    update: sa.Update


def _rotation_statements(table: sa.Table, owner_name: str, batch_size: int) -> _Statements:
    owner, name, custom = table.c[owner_name], table.c.name, table.c.is_custom_property
    order = (owner, name, custom)
    pending = (
        sa.select(*order, table.c.string_value)
        .where(table.c.string_value.like(sa.bindparam("envelopes")))
        .where(table.c.string_value.not_like(sa.bindparam("active")))
        .order_by(*order)
        .limit(batch_size)
    )
    # Typed parameters: names go through the column's own conversion (MySQL's MLMD encoding).
    position = sa.tuple_(
        sa.bindparam("o", type_=owner.type), sa.bindparam("n", type_=name.type), sa.bindparam("c", type_=custom.type)
    )
    update = (
        sa.update(table)
        .where(owner == sa.bindparam("o"), name == sa.bindparam("n"), custom == sa.bindparam("c"))
        .where(table.c.string_value == sa.bindparam("old"))
        .values(string_value=sa.bindparam("new"))
    )
    return _Statements(pending, pending.where(sa.tuple_(*order) > position), update)


def _rotate_batch(
    database: Any,
    keyring: Keyring,
    associated: Aad,
    kind: str,
    statements: _Statements,
    last: tuple[Any, ...] | None,
) -> _Batch:
    parameters: dict[str, Any] = {"envelopes": ENVELOPE_V1 + "%", "active": key_prefix(keyring.active_key_id) + "%"}
    if last is not None:
        parameters.update(o=last[0], n=last[1], c=last[2])
    with database.transaction() as uow:
        rows = [tuple(row) for row in uow.execute(statements.after if last else statements.first, parameters)]
        if not rows:
            return _Batch(None, 0, 0, 0, {})
        updates = []
        failed: dict[str, int] = {}
        for owner_id, name, is_custom, old in rows:
            aad = associated(kind, int(owner_id), bool(is_custom), name)
            try:
                plaintext = keyring.open(old, aad)
            except SealError as error:
                failed[str(error)] = failed.get(str(error), 0) + 1
                continue
            new = keyring.seal(plaintext, aad)
            updates.append({"o": owner_id, "n": name, "c": is_custom, "old": old, "new": new})
        rotated = 0
        for item in updates:  # one statement each: executemany rowcounts are not per row on every driver
            rotated += uow.execute(statements.update, item).rowcount
        return _Batch(rows[-1][:3], len(rows), rotated, len(updates) - rotated, failed)


def _with_retries(attempts: int, run: Callable[[], _Batch]) -> _Batch:
    for attempt in range(attempts - 1):
        try:
            return run()
        except errors.AbortedError:  # a deadlock or a busy SQLite file: the batch is retried whole
            time.sleep(0.05 * (attempt + 1))
    return run()


def remaining_envelopes(database: Any, keyring: Keyring) -> dict[str, int]:
    """Envelopes not under the active key: per configured key id, and "?" for any other."""
    ids = sorted(keyring.key_ids() - {keyring.active_key_id})
    counts: dict[str, int] = {}
    with database.transaction(write=False) as uow:
        for _, table, _ in _property_tables(database.schema):
            count = sa.select(sa.func.count()).where(table.c.string_value.like(sa.bindparam("prefix")))
            total = uow.execute(count, {"prefix": ENVELOPE_V1 + "%"}).scalar_one()
            total -= uow.execute(count, {"prefix": key_prefix(keyring.active_key_id) + "%"}).scalar_one()
            for key_id in ids:
                under = uow.execute(count, {"prefix": key_prefix(key_id) + "%"}).scalar_one()
                if under:
                    counts[key_id] = counts.get(key_id, 0) + under
                total -= under
            if total:
                counts["?"] = counts.get("?", 0) + total
    return counts


def registered_keys(connection: sa.Connection) -> list[str]:
    """The key ids the registry lists (values may be encrypted under each), sorted."""
    return list(connection.execute(sa.select(KEYS.c.key_id).order_by(KEYS.c.key_id)).scalars())

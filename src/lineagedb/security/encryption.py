"""Encryption at rest: the keys (a file or the environment) and the sensitive-property policy file.

Key file (TOML; `lineagedb keys generate` writes one, mode 0600):

    active = "2026-11"                      # new values are encrypted under this key
    [keys]
    "2026-11" = "<base64 of 32 random bytes>"
    "2026-05" = "<base64 ...>"              # older keys: still read until `lineagedb keys rotate`

Environment (instead of a file): LINEAGEDB_ENCRYPTION_KEYS="2026-11=<base64>,2026-05=<base64>",
the first key being the active one.

Sensitive-property policy (`--sensitive-properties FILE`, TOML); a key left out keeps its default:

    patterns = ["*password*", "*token*", "*secret*", "env.*"]   # any (custom) property, any type
    custom_prefixes = ["secret."]                               # custom properties starting so
    [types]                                                     # a type's own sensitive properties
    "my.Trainer" = ["api_key", "db_dsn"]

Nothing here echoes key material: errors name the file and the key id only.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lineagedb.store.encryption import KEY_BYTES, KEY_ID_PATTERN, Keyring
from lineagedb.store.sensitive import DEFAULT_PATTERNS, PropertyProtection, SensitivePolicy

KEYS_ENV = "LINEAGEDB_ENCRYPTION_KEYS"


class EncryptionConfigError(Exception):
    """The keys or the sensitive-property policy cannot be used; the message says why (no key bytes)."""


@dataclass(frozen=True)
class StaticKeyProvider:
    """Keys held in memory, read from a key file or the environment (store.encryption.KeyProvider)."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        # The key registry finds envelopes of a key with LIKE, which MySQL compares without
        # case: two ids that differ only in case would be taken for one in rotation and checks.
        by_case: dict[str, str] = {}
        for key_id in sorted(self.keys):
            other = by_case.setdefault(key_id.lower(), key_id)
            if other != key_id:
                raise EncryptionConfigError(
                    f"key ids {other!r} and {key_id!r} differ only in case; give each key an id of its own"
                )

    def active_key_id(self) -> str:
        return self.active

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def key_ids(self) -> frozenset[str]:
        return frozenset(self.keys)


def _key_bytes(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise EncryptionConfigError(f"{where} must be a base64 string")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionConfigError(f"{where} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise EncryptionConfigError(f"{where} must be {KEY_BYTES} bytes (base64 of 32 random bytes), not {len(key)}")
    return key


def _key_id(key_id: Any, where: str) -> str:
    if not isinstance(key_id, str) or KEY_ID_PATTERN.fullmatch(key_id) is None:
        raise EncryptionConfigError(
            f"{where}: a key id is 1-64 letters, digits, '.' or '-', starting with one of the first two"
        )
    return key_id


def parse_key_document(document: Mapping[str, Any], where: str) -> StaticKeyProvider:
    unknown = set(document) - {"active", "keys"}
    if unknown:
        raise EncryptionConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    table = document.get("keys")
    if not isinstance(table, dict) or not table:
        raise EncryptionConfigError(f"{where}: a [keys] table with at least one key is required")
    keys = {_key_id(key_id, where): _key_bytes(text, f"{where}: key {key_id!r}") for key_id, text in table.items()}
    active = document.get("active")
    if active is None and len(keys) == 1:
        active = next(iter(keys))
    if not isinstance(active, str) or active not in keys:
        raise EncryptionConfigError(f"{where}: 'active' must name one of the keys ({', '.join(sorted(keys))})")
    return StaticKeyProvider(keys, active)


def load_key_file(path: str | Path) -> StaticKeyProvider:
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise EncryptionConfigError(f"cannot read the encryption key file {path}: {error.strerror or error}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        # The parser's message may quote the offending line, which may hold a key: not repeated.
        raise EncryptionConfigError(f"the encryption key file {path} is not valid TOML") from None
    return parse_key_document(document, f"the encryption key file {path}")


def parse_key_environment(text: str) -> StaticKeyProvider:
    """`ID=BASE64,ID=BASE64`, the first key active."""
    keys: dict[str, bytes] = {}
    active = None
    for number, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition("=")
        where = f"{KEYS_ENV} entry {number + 1}"
        if not sep:
            raise EncryptionConfigError(f"{where} must be ID=BASE64")
        # Entries are named by position only: in a mistyped entry (a key without its id)
        # what reads as the id is key material.
        key_id = _key_id(key_id.strip(), where)
        if key_id in keys:
            raise EncryptionConfigError(f"{where}: its key id is given twice")
        keys[key_id] = _key_bytes(encoded, where)
        active = active or key_id
    if active is None:
        raise EncryptionConfigError(f"{KEYS_ENV} holds no key")
    return StaticKeyProvider(keys, active)


def load_key_provider(keys_file: str | None, environ: Mapping[str, str]) -> StaticKeyProvider | None:
    """The configured keys, or None (encryption off). A file and the variable together are
    refused: which one wins would be a guess."""
    from_env = environ.get(KEYS_ENV, "").strip()
    if keys_file and from_env:
        raise EncryptionConfigError(f"give the encryption keys either as a file or in {KEYS_ENV}, not both")
    if keys_file:
        return load_key_file(keys_file)
    if from_env:
        return parse_key_environment(from_env)
    return None


def load_sensitive_policy(path: str | Path | None) -> SensitivePolicy:
    if path is None:
        return SensitivePolicy()
    where = f"the sensitive-properties file {path}"
    try:
        document = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as error:
        raise EncryptionConfigError(f"cannot read {where}: {error.strerror or error}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise EncryptionConfigError(f"{where} is not valid TOML: {error}") from None
    return parse_sensitive_policy(document, where)


def parse_sensitive_policy(
    document: Mapping[str, Any], where: str = "the sensitive-properties policy"
) -> SensitivePolicy:
    unknown = set(document) - {"patterns", "custom_prefixes", "types"}
    if unknown:
        raise EncryptionConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    patterns = _texts(document.get("patterns", list(DEFAULT_PATTERNS)), f"{where}: patterns")
    prefixes = _texts(document.get("custom_prefixes", []), f"{where}: custom_prefixes")
    types = document.get("types", {})
    if not isinstance(types, dict):
        raise EncryptionConfigError(f"{where}: [types] must map type names to lists of property names")
    return SensitivePolicy(
        patterns=tuple(patterns),
        custom_prefixes=tuple(prefixes),
        types={name: frozenset(_texts(names, f"{where}: types.{name}")) for name, names in types.items()},
    )


def _texts(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise EncryptionConfigError(f"{where} must be a list of non-empty strings")
    return list(value)


def build_protection(
    keys_file: str | None, sensitive_file: str | None, environ: Mapping[str, str]
) -> PropertyProtection | None:
    """What the server encrypts with: None when no keys are configured (then a policy file
    alone is refused, since it would protect nothing)."""
    provider = load_key_provider(keys_file, environ)
    if provider is None:
        if sensitive_file:
            raise EncryptionConfigError(
                f"--sensitive-properties needs encryption keys (--encryption-keys-file or {KEYS_ENV})"
            )
        return None
    policy = load_sensitive_policy(sensitive_file)
    try:
        keyring = Keyring(provider)
    except ValueError as error:
        raise EncryptionConfigError(str(error)) from None
    return PropertyProtection(keyring, policy)


# -- `lineagedb keys generate` -----------------------------------------------------------------------


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def key_file_text(active: str, keys: Mapping[str, str]) -> str:
    lines = [
        "# LineageDB encryption keys (lineagedb keys generate). Keep this file secret and backed up:",
        "# values encrypted under a key cannot be read without it.",
        f'active = "{active}"',
        "",
        "[keys]",
    ]
    lines += [f'"{key_id}" = "{encoded}"' for key_id, encoded in keys.items()]
    return "\n".join(lines) + "\n"


def add_generated_key(path: Path | None, key_id: str) -> str:
    """A key file's text with a new key `key_id` made active (the file's other keys kept).
    Writes it to `path` (created 0600, replaced atomically) when given; returns the text."""
    _key_id(key_id, "--id")
    keys: dict[str, str] = {}
    if path is not None and path.exists():
        provider = load_key_file(path)
        keys = {kid: base64.b64encode(provider.keys[kid]).decode("ascii") for kid in provider.keys}
        if key_id in keys:
            raise EncryptionConfigError(f"the key file {path} already has a key {key_id!r}")
    keys = {key_id: new_key(), **keys}
    StaticKeyProvider({kid: b"" for kid in keys}, key_id)  # refuses ids that differ only in case
    text = key_file_text(key_id, keys)
    if path is not None:
        temporary = path.with_name(path.name + ".tmp")
        # A leftover temporary file (another user's, or wider permissions) is never reused:
        # O_EXCL creates ours with 0600 or fails.
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    return text

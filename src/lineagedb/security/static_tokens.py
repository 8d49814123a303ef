"""Static bearer tokens, stored only as SHA-256 hashes.

The tokens file holds one token per line:

    sha256:<64 hex digits> <principal> [group ...]

Blank lines and lines starting with '#' are ignored. A leaked file does not leak
tokens: they are long random strings (new_token), so their hashes cannot be reversed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lineagedb.config import ConfigurationError
from lineagedb.security.identity import Identity

TOKEN_PREFIX = "ldb_"
HASH_PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")


class TokensFileError(ConfigurationError):
    """The tokens file cannot be read or has a malformed line (the message names the line)."""


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, recognisable by its prefix in leak scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_name(name: str, what: str = "principal") -> str:
    """Principals and groups are single words: ':' is fine (system:serviceaccount:ns:sa), whitespace is not."""
    if not name:
        raise ValueError(f"the {what} must not be empty")
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise ValueError(f"the {what} {name!r} must not contain whitespace or control characters")
    if name.startswith("#"):
        # The file has no inline comments: '#' here would silently become a principal or group.
        raise ValueError(f"the {what} {name!r} must not start with '#' (comments go on their own line)")
    return name


def tokens_file_line(token: str, principal: str, groups: Iterable[str] = ()) -> str:
    """The line that makes `token` valid for `principal` (what `lineagedb token create` prints)."""
    names = [check_name(principal), *(check_name(group, "group") for group in groups)]
    return " ".join([HASH_PREFIX + token_digest(token), *names])


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    identity: Identity


class StaticTokens:
    """An immutable digest -> identity table; reloading builds a new one."""

    def __init__(self, entries: Mapping[str, Identity], source: str = "<memory>") -> None:
        # Keyed by the raw 32-byte digest: a call hashes the presented token with digest(),
        # not hexdigest(), so it builds and hashes no 64-character string (callgrind: ~2k
        # instructions of the ~25k authentication added to a trivial call).
        self._entries = {
            bytes.fromhex(digest): _Entry(bytes.fromhex(digest), identity) for digest, identity in entries.items()
        }
        self.source = source

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: str | Path) -> StaticTokens:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokensFileError(f"cannot read the tokens file {path}: {error}") from error
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<memory>") -> StaticTokens:
        entries: dict[str, Identity] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                digest, identity = _parse_line(line)
            except ValueError as error:
                raise TokensFileError(f"tokens file {source} line {number}: {error}") from None
            if digest in entries:
                raise TokensFileError(f"tokens file {source} line {number}: this hash is already listed above")
            entries[digest] = identity
        return cls(entries, source)

    def lookup(self, token: str) -> Identity | None:
        """The identity of a valid token, else None. One hash and one dict lookup: this runs on every call."""
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        entry = self._entries.get(presented)
        # The dict lookup already matched; compare_digest keeps the final check constant-time
        # should the table ever be keyed by something other than the full digest.
        if entry is None or not hmac.compare_digest(entry.digest, presented):
            return None
        return entry.identity


def _parse_line(line: str) -> tuple[str, Identity]:
    fields = line.split()
    if len(fields) < 2:
        raise ValueError("expected 'sha256:<64 hex digits> <principal> [group ...]'")
    hashed, principal, *groups = fields
    if not hashed.startswith(HASH_PREFIX):
        raise ValueError("the first field must be 'sha256:<64 hex digits>' (the file holds hashes, never tokens)")
    digest = hashed[len(HASH_PREFIX) :].lower()
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError("the hash after 'sha256:' must be 64 hexadecimal digits")
    check_name(principal)
    for group in groups:
        check_name(group, "group")
    return digest, Identity(principal=principal, groups=frozenset(groups), method="token")

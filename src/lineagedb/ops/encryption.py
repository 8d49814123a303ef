"""Encryption at rest, operations side: `serve` flags, the startup check, `lineagedb keys generate|rotate`.

The server: `--encryption-keys-file FILE` (or LINEAGEDB_ENCRYPTION_KEYS holding the keys
themselves) turns encryption on; `--sensitive-properties FILE` replaces the default
patterns. Keys that cannot be read, a database holding values under a key that is not
configured, or a key whose bytes differ from those the database was encrypted with: the
server refuses to start (exit 2 for unreadable configuration, 3 for the database check).
It never falls back to writing plaintext.

Rotation: put a new key in the key file and make it active (`lineagedb keys generate
--file FILE`), restart the servers so new values use it, then run `lineagedb keys rotate`
while they serve; once it reports no value left under the old key, the old key can leave
the file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineagedb import errors
from lineagedb.config import ConfigurationError, env

if TYPE_CHECKING:  # the rest is imported where used: every command builds the parser, few need crypto
    import sqlalchemy as sa

    from lineagedb.security.settings import SecuritySettings
    from lineagedb.store.bootstrap import SchemaState
    from lineagedb.store.sensitive import PropertyProtection

# security.encryption.KEYS_ENV, repeated so that building the parser imports nothing heavy.
KEYS_ENV = "LINEAGEDB_ENCRYPTION_KEYS"

log = logging.getLogger(__name__)

EXIT_INCOMPLETE = 1


# -- the server -----------------------------------------------------------------------------------


def add_serve_arguments(serve: argparse.ArgumentParser, option: Callable[..., None]) -> None:
    """The `serve` flags; `option` is the command line's flag helper (flag + LINEAGEDB_* variable)."""
    group = serve.add_argument_group(
        "encryption at rest", f"off unless keys are given (--encryption-keys-file or {KEYS_ENV})"
    )
    option(
        group,
        "--encryption-keys-file",
        "--encryption-keys",
        dest="encryption_keys_file",
        env_name="ENCRYPTION_KEYS_FILE",
        metavar="FILE",
        help=f"key file (TOML: active key id and [keys]); or the keys themselves in {KEYS_ENV}",
    )
    option(
        group,
        "--sensitive-properties",
        env_name="SENSITIVE_PROPERTIES",
        metavar="FILE",
        help="which properties are encrypted (TOML: patterns, custom_prefixes, [types]); default: "
        "*password*, *token*, *secret*, env.*",
    )


def server_protection(security: SecuritySettings, environ: Mapping[str, str] = os.environ) -> PropertyProtection | None:
    """The server's encryption, or None; bad keys or policy stop startup (ConfigurationError)."""
    from lineagedb.security.encryption import EncryptionConfigError, build_protection

    try:
        protection = build_protection(security.encryption_keys_file, security.sensitive_properties_file, environ)
    except EncryptionConfigError as error:
        raise ConfigurationError(str(error)) from None
    if protection is not None:
        log.info(
            "encryption at rest: on, active key %r of %d; sensitive: %s",
            protection.keyring.active_key_id,
            len(protection.keyring.key_ids()),
            _describe_policy(protection),
        )
        if not (security.authentication_enabled or security.anonymous):
            # Fail closed: without callers there is nobody to grant secrets:read to.
            log.warning("authentication is off: every caller reads sensitive property values redacted")
    return protection


def _describe_policy(protection: PropertyProtection) -> str:
    policy = protection.policy
    parts = [f"names like {', '.join(policy.patterns)}" if policy.patterns else "no name patterns"]
    if policy.custom_prefixes:
        parts.append(f"custom properties starting with {', '.join(policy.custom_prefixes)}")
    if policy.types:
        parts.append(f"named properties of {len(policy.types)} types")
    return "; ".join(parts)


def check_database(engine: sa.Engine, state: SchemaState, protection: PropertyProtection | None) -> None:
    """At startup, once the schema is ready: the database's keys against the configured ones.
    Raises FailedPreconditionError (the server stops) with the reason."""
    from lineagedb.store import encryption
    from lineagedb.store.bootstrap import upgrade_command
    from lineagedb.store.encryption import ENCRYPTION_REVISION

    url_text = engine.url.render_as_string(hide_password=True)
    if state.revision is None or state.revision < ENCRYPTION_REVISION:
        if protection is None:
            return  # no registry yet, and nothing could have been encrypted without one
        raise errors.FailedPreconditionError(
            f"encryption at rest needs LineageDB's schema revision {ENCRYPTION_REVISION} or later; run: "
            + upgrade_command(url_text)
        )
    encryption.check_database_keys(engine, protection.keyring if protection is not None else None, url_text)


# -- lineagedb keys ... ----------------------------------------------------------------------------


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="encryption keys of sensitive property values: generate, rotate")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_sub.add_parser(
        "generate",
        help="make a new key",
        description="Add a new random 256-bit key to a key file and make it the active one (the file's other "
        "keys are kept, for reading older values until `lineagedb keys rotate`). Without --file, print a new "
        "key file.",
    )
    generate.add_argument("--id", required=True, help="key id: letters, digits, '.' or '-', e.g. 2026-11")
    generate.add_argument("--file", type=Path, help="key file to create (mode 0600) or add to")
    rotate = keys_sub.add_parser(
        "rotate",
        help="re-encrypt every value under the active key, in batches, while servers run",
    )
    rotate.add_argument("--database", default=env("DATABASE_URL"), help="SQLAlchemy URL")
    rotate.add_argument(
        "--encryption-keys-file",
        "--encryption-keys",
        dest="encryption_keys_file",
        default=env("ENCRYPTION_KEYS_FILE"),
        metavar="FILE",
        help=f"the key file, new active key and old keys (or {KEYS_ENV})",
    )
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")


def run_keys_command(args: argparse.Namespace, default_url: str) -> int:
    if args.keys_command == "generate":
        return _generate(args.file, args.id)
    return _rotate(args.database or default_url, args.encryption_keys_file, max(1, args.batch_size))


def _generate(path: Path | None, key_id: str) -> int:
    from lineagedb.security.encryption import EncryptionConfigError, add_generated_key

    try:
        text = add_generated_key(path, key_id)
    except EncryptionConfigError as error:
        raise ConfigurationError(str(error)) from None
    if path is None:
        sys.stdout.write(text)
    else:
        print(f"{path}: added key {key_id!r} and made it active")
        print("# Restart the servers with this file, then run `lineagedb keys rotate` to re-encrypt older values.")
    return 0


def _rotate(url: str, keys_file: str | None, batch_size: int) -> int:
    from sqlalchemy.engine import make_url

    from lineagedb.ops.database import password_from_environment, with_password
    from lineagedb.security.encryption import EncryptionConfigError, load_key_provider
    from lineagedb.store import encryption
    from lineagedb.store.bootstrap import inspect_schema, upgrade_command
    from lineagedb.store.encryption import ENCRYPTION_REVISION, Keyring
    from lineagedb.store.engine import PoolSettings, create_engine
    from lineagedb.store.sensitive import property_aad
    from lineagedb.store.unit_of_work import Database

    try:
        provider = load_key_provider(keys_file, os.environ)
        if provider is None:
            raise EncryptionConfigError(f"no keys: give --encryption-keys-file or {KEYS_ENV}")
        keyring = Keyring(provider)
    except (EncryptionConfigError, ValueError) as error:
        raise ConfigurationError(str(error)) from None
    engine = create_engine(with_password(make_url(url), password_from_environment(None)), PoolSettings(size=1))
    url_text = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            state = inspect_schema(connection)
        if state.revision is None or state.revision < ENCRYPTION_REVISION:
            raise errors.FailedPreconditionError(
                f"this database has no encryption key registry (revision {ENCRYPTION_REVISION}); run: "
                + upgrade_command(url_text)
            )
        # Wrong key bytes under a known id would fail every value: refuse before touching any.
        encryption.check_database_keys(engine, keyring, url_text)
        report = encryption.rotate(Database(engine), keyring, property_aad, batch_size=batch_size)
    finally:
        engine.dispose()
    active = keyring.active_key_id
    print(f"re-encrypted {report.rotated} values under key {active!r} ({report.batches} batches of <= {batch_size})")
    if report.changed_meanwhile:
        print(f"changed by a server meanwhile, left as written: {report.changed_meanwhile}")
    for reason, count in sorted(report.failed.items()):
        print(f"not re-encrypted: {count} ({reason})")
    if report.remaining:
        left = ", ".join(f"{count} under {key_id!r}" for key_id, count in sorted(report.remaining.items()))
        print(f"still under other keys: {left} (a server still writing with an older active key? run again)")
        return EXIT_INCOMPLETE
    retired = sorted(keyring.key_ids() - {active})
    if retired:
        print(
            f"no value is left under {', '.join(repr(k) for k in retired)}: once every server runs with "
            f"{active!r} active, those keys can leave the key file"
        )
    return EXIT_INCOMPLETE if report.failed else 0

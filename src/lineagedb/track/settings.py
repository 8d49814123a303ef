"""Where capture sends steps and keeps its files: explicit arguments first, then the
environment, then defaults.

Settings (argument of `track.configure`, then environment variable):

* a server: `target="host:port"`, `token`, `namespace`; LINEAGEDB_TARGET, LINEAGEDB_TOKEN,
  LINEAGEDB_NAMESPACE;
* TLS to the server beyond "grpcs://host:port" (the system's CAs): `tls_ca` (PEM file of the
  CA that verifies the server), `tls_cert` and `tls_key` (a client certificate, for mTLS);
  LINEAGEDB_TRACK_TLS_CA, LINEAGEDB_TRACK_TLS_CERT, LINEAGEDB_TRACK_TLS_KEY;
* an embedded database (no server): `database_url="sqlite:////abs/path.db"`;
  LINEAGEDB_DATABASE_URL when no target is set;
* any client object with MLMD's methods: `store=MetadataStore(...)`;
* the journal and digest cache: `directory`; LINEAGEDB_TRACK_DIR (default
  `$XDG_CACHE_HOME/lineagedb`, else `~/.cache/lineagedb`);
* the hashing cap in bytes: `max_hash_bytes`; LINEAGEDB_TRACK_MAX_HASH_BYTES (default 8 GiB);
* seconds a write may take: `timeout_s`; LINEAGEDB_TRACK_TIMEOUT (default 10);
* the default pipeline and run: `pipeline`, `run`; LINEAGEDB_PIPELINE, LINEAGEDB_RUN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lineagedb.track.digests import DEFAULT_MAX_HASH_BYTES


class TrackConfigurationError(ValueError):
    """A setting of lineagedb.track that cannot work (said before any step runs)."""


@dataclass(frozen=True)
class TrackSettings:
    target: str | None = None
    token: str | None = None
    namespace: str | None = None
    database_url: str | None = None
    directory: Path = Path(".")
    max_hash_bytes: int = DEFAULT_MAX_HASH_BYTES
    timeout_s: float = 10.0
    pipeline: str | None = None
    run: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = field(default=None, repr=False)

    @property
    def journal_dir(self) -> Path:
        return self.directory / "journal"

    @property
    def cache_file(self) -> Path:
        return self.directory / "digests.sqlite"

    def describe_store(self) -> str:
        """Where steps go, for messages (never the token; a database URL without its password)."""
        if self.target:
            return f"server {self.target}" + (f" (namespace {self.namespace})" if self.namespace else "")
        if self.database_url:
            return f"embedded database {_without_password(self.database_url)}"
        return "no store configured"


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in userinfo else url


def _default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lineagedb"


def _number(name: str, raw: str | None, convert: type[int] | type[float]) -> int | float | None:
    if raw is None or raw == "":
        return None
    try:
        value = convert(raw)
    except ValueError:
        raise TrackConfigurationError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise TrackConfigurationError(f"{name} must be positive, not {raw!r}")
    return value


def resolve(
    *,
    target: str | None = None,
    token: str | None = None,
    namespace: str | None = None,
    database_url: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    max_hash_bytes: int | None = None,
    timeout_s: float | None = None,
    pipeline: str | None = None,
    run: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> TrackSettings:
    environ = os.environ
    tls_ca = tls_ca or environ.get("LINEAGEDB_TRACK_TLS_CA") or None
    tls_cert = tls_cert or environ.get("LINEAGEDB_TRACK_TLS_CERT") or None
    tls_key = tls_key or environ.get("LINEAGEDB_TRACK_TLS_KEY") or None
    if bool(tls_cert) != bool(tls_key):
        raise TrackConfigurationError("a client certificate needs both tls_cert and tls_key")
    for name, path in (("tls_ca", tls_ca), ("tls_cert", tls_cert), ("tls_key", tls_key)):
        if path is not None and not Path(path).is_file():
            raise TrackConfigurationError(f"{name}: {path} is not a readable file")
    if target and database_url:
        raise TrackConfigurationError("give either a target (a server) or a database_url (embedded), not both")
    if not target and not database_url:
        target = environ.get("LINEAGEDB_TARGET") or None
        if not target:
            database_url = environ.get("LINEAGEDB_DATABASE_URL") or None
    env_cap = _number("LINEAGEDB_TRACK_MAX_HASH_BYTES", environ.get("LINEAGEDB_TRACK_MAX_HASH_BYTES"), int)
    env_timeout = _number("LINEAGEDB_TRACK_TIMEOUT", environ.get("LINEAGEDB_TRACK_TIMEOUT"), float)
    cap = max_hash_bytes if max_hash_bytes is not None else (env_cap or DEFAULT_MAX_HASH_BYTES)
    if cap < 0:
        raise TrackConfigurationError(f"max_hash_bytes must be at least 0, not {cap}")
    return TrackSettings(
        target=target,
        token=token if token is not None else (environ.get("LINEAGEDB_TOKEN") or None),
        namespace=namespace if namespace is not None else (environ.get("LINEAGEDB_NAMESPACE") or None),
        database_url=database_url,
        directory=Path(directory or environ.get("LINEAGEDB_TRACK_DIR") or _default_directory()).expanduser(),
        max_hash_bytes=int(cap),
        timeout_s=float(timeout_s if timeout_s is not None else (env_timeout or 10.0)),
        pipeline=pipeline if pipeline is not None else (environ.get("LINEAGEDB_PIPELINE") or None),
        run=run if run is not None else (environ.get("LINEAGEDB_RUN") or None),
        tls_ca=tls_ca,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )

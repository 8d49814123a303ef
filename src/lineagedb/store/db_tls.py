"""Encryption in transit to the database: the TLS options of database URLs, as the drivers need them.

The options stay in engine.url, so that the URLs shown in logs and in suggested commands (e.g.
`lineagedb db upgrade --database ...`) still say how to connect, except the secret ones
(SECRET_QUERY_KEYS: a client key's password), which travel as connect arguments instead.

PostgreSQL (psycopg2): libpq reads `sslmode`, `sslrootcert`, `sslcert`, `sslkey` and
`sslpassword` from the URL itself. A file the URL names must exist: libpq silently skips a
missing `sslcert`, and the server then says only that a certificate is required.

MySQL/MariaDB (PyMySQL): the options become one `ssl.SSLContext`. SQLAlchemy's own translation
of `ssl_*` query options into PyMySQL's deprecated `ssl` dict verifies nothing when
`ssl_check_hostname=true` comes without a CA; PyMySQL's own `ssl_verify_identity` and
`ssl_disabled` arrive as strings, for which "false" means true; and its `ssl_verify_cert` next
to `ssl_ca` drops the CA. Other MySQL drivers get the URL unchanged.

* `ssl_ca` (file) / `ssl_capath` (directory): CAs to verify the server's certificate against;
  giving either verifies it.
* `ssl_verify_cert=true`: verify it also without them, against the system's trusted CAs;
  `=false`: encrypt without verifying.
* `ssl_check_hostname` (alias `ssl_verify_identity`): also check that the certificate names the
  host connected to; on by default whenever the certificate is verified.
* `ssl_cert`, `ssl_key`, `ssl_key_password`: the client certificate; `ssl_cipher`: allowed ciphers.
* `ssl_disabled=true`: no TLS at all (PyMySQL otherwise encrypts when the server offers it).

Any of these but `ssl_disabled` makes TLS required: a connection that ends up unencrypted is refused.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

# Query options whose values are secrets: moved out of the URL, and masked where a URL is shown.
SECRET_QUERY_KEYS = frozenset({"sslpassword", "ssl_key_password"})
MYSQL_TLS_KEYS = (
    "ssl_ca",
    "ssl_capath",
    "ssl_cert",
    "ssl_key",
    "ssl_key_password",
    "ssl_cipher",
    "ssl_check_hostname",
    "ssl_verify_identity",
    "ssl_verify_cert",
    "ssl_disabled",
)
# PyMySQL's own keyword arguments, which SQLAlchemy passes through from the URL as strings.
_PYMYSQL_RAW_KEYS = ("ssl_verify_cert", "ssl_verify_identity", "ssl_disabled", "ssl_key_password")
_POSTGRES_FILE_KEYS = ("sslrootcert", "sslcert", "sslkey")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# PyMySQL's "SSL is required but the server doesn't support it" (CR_SSL_CONNECTION_ERROR).
CR_SSL_CONNECTION_ERROR = 2026


@dataclass(frozen=True)
class DriverArguments:
    """The URL to create the engine from (without secret options), and connect arguments that
    take precedence over what the dialect makes of the URL's query."""

    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    tls_required: bool = False  # MySQL: refuse a connection that is not encrypted
    tls_verified: bool = False  # MySQL: the server's certificate is checked


def driver_arguments(url: URL) -> DriverArguments:
    """What `url`'s driver needs for its TLS options. Raises sa_exc.ArgumentError if they are unusable."""
    backend = url.get_backend_name()
    if backend == "postgresql":
        arguments = _postgres_arguments(url)
    elif backend in ("mysql", "mariadb") and url.get_driver_name() == "pymysql":
        arguments = _mysql_arguments(url)
    else:
        return DriverArguments(url)
    secret = [key for key in SECRET_QUERY_KEYS if key in url.query]
    if not secret:
        return arguments
    connect_args = {key: url.query[key] for key in secret if key == "sslpassword"}
    return replace(
        arguments, url=url.difference_update_query(secret), connect_args={**connect_args, **arguments.connect_args}
    )


def _single(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        raise sa_exc.ArgumentError(f"the database URL option {key} is given more than once")
    return value


def _check_file(key: str, path: str, directory: bool = False) -> None:
    """A named certificate, key or CA file must be readable; the message names the path, never the content."""
    expanded = os.path.expanduser(path)
    kind = "directory" if directory else "file"
    exists = os.path.isdir(expanded) if directory else os.path.isfile(expanded)
    if not exists:
        raise sa_exc.ArgumentError(f"the database URL option {key} names {path}, which is not an existing {kind}")
    if not os.access(expanded, os.R_OK | (os.X_OK if directory else 0)):
        raise sa_exc.ArgumentError(f"the database URL option {key} names {path}, which this process cannot read")


def _postgres_arguments(url: URL) -> DriverArguments:
    for key in _POSTGRES_FILE_KEYS:
        path = _single(url, key)
        # libpq's sslrootcert=system means the system's trusted CAs, not a file.
        if path and not (key == "sslrootcert" and path == "system"):
            _check_file(key, path)
    _single(url, "sslpassword")
    return DriverArguments(url)


def _flag(url: URL, key: str) -> bool | None:
    value = _single(url, key)
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise sa_exc.ArgumentError(f"the database URL option {key} must be true or false, not {value!r}")


def _mysql_arguments(url: URL) -> DriverArguments:
    given = [key for key in MYSQL_TLS_KEYS if key in url.query]
    unknown = sorted(key for key in url.query if key.startswith("ssl") and key not in MYSQL_TLS_KEYS)
    if unknown:
        raise sa_exc.ArgumentError(
            f"unknown MySQL/MariaDB TLS option(s) {', '.join(unknown)} in the database URL; "
            f"known: {', '.join(MYSQL_TLS_KEYS)}"
        )
    if not given:
        return DriverArguments(url)
    # Our values replace SQLAlchemy's `ssl` dict (made from ssl_ca & co.) and PyMySQL's raw string keywords.
    overrides: dict[str, Any] = {key: None for key in _PYMYSQL_RAW_KEYS if key in url.query}
    if _flag(url, "ssl_disabled"):
        if len(given) > 1:
            raise sa_exc.ArgumentError("ssl_disabled=true contradicts the other TLS options of the database URL")
        return DriverArguments(url, {**overrides, "ssl_disabled": True})
    if given == ["ssl_disabled"]:
        return DriverArguments(url, overrides)
    context, verified = mysql_ssl_context(url)
    return DriverArguments(url, {**overrides, "ssl": context}, tls_required=True, tls_verified=verified)


def mysql_ssl_context(url: URL) -> tuple[ssl.SSLContext, bool]:
    """The SSLContext for `url`'s MySQL TLS options, and whether it verifies the server's certificate."""
    ca, capath = _single(url, "ssl_ca"), _single(url, "ssl_capath")
    cert, key = _single(url, "ssl_cert"), _single(url, "ssl_key")
    check_hostname = _flag(url, "ssl_check_hostname")
    verify_identity = _flag(url, "ssl_verify_identity")
    if check_hostname is not None and verify_identity is not None and check_hostname != verify_identity:
        raise sa_exc.ArgumentError("ssl_check_hostname and ssl_verify_identity disagree in the database URL")
    if check_hostname is None:
        check_hostname = verify_identity
    verify = _flag(url, "ssl_verify_cert")
    if verify is None:
        verify = bool(ca or capath or check_hostname)
    if check_hostname is None:
        check_hostname = verify
    if check_hostname and not verify:
        raise sa_exc.ArgumentError(
            "ssl_check_hostname=true needs a verified certificate, but ssl_verify_cert=false in the database URL"
        )
    for option, path in (("ssl_ca", ca), ("ssl_cert", cert), ("ssl_key", key)):
        if path:
            _check_file(option, path)
    if capath:
        _check_file("ssl_capath", capath, directory=True)
    if key and not cert:
        raise sa_exc.ArgumentError("ssl_key needs ssl_cert (the client certificate) in the database URL")
    try:
        if verify:
            # Without ssl_ca/ssl_capath this trusts the system's CAs.
            context = ssl.create_default_context(
                cafile=os.path.expanduser(ca) if ca else None,
                capath=os.path.expanduser(capath) if capath else None,
            )
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = bool(check_hostname)
        context.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
        # As PyMySQL does: the certificates MySQL generates for itself lack extensions that
        # strict X.509 checking (Python 3.13's default) requires.
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        if cert:
            context.load_cert_chain(
                os.path.expanduser(cert),
                keyfile=os.path.expanduser(key) if key else None,
                password=_single(url, "ssl_key_password") or _no_key_password,
            )
        cipher = _single(url, "ssl_cipher")
        if cipher:
            context.set_ciphers(cipher)
    except ssl.SSLError as error:
        # The ssl module's reason names files and what is wrong with them, never their content.
        raise sa_exc.ArgumentError(
            f"the database URL's TLS options are unusable ({error.reason or error}): "
            "check ssl_cert, ssl_key, ssl_key_password and ssl_cipher"
        ) from error
    return context, verify


def _no_key_password() -> bytes:
    # Called only for an encrypted key; without this OpenSSL would prompt on the terminal.
    raise sa_exc.ArgumentError("the ssl_key file is encrypted: give its password as ssl_key_password")


def require_encrypted(dbapi_connection: Any) -> None:
    """Refuse a MySQL connection that asked for TLS but is not encrypted.

    PyMySQL 1.x carried on in plaintext when the server did not offer TLS (so a man in the
    middle could strip it); 2.x refuses itself. Checking the socket costs no round trip.
    """
    sock = getattr(dbapi_connection, "_sock", None)
    if sock is not None and not isinstance(sock, ssl.SSLSocket):
        import pymysql

        dbapi_connection.close()  # the pool never sees it: close it here
        raise pymysql.err.OperationalError(
            CR_SSL_CONNECTION_ERROR, "TLS is required by the database URL but the connection is not encrypted"
        )


def is_tls_failure(error: sa_exc.DBAPIError) -> bool:
    """True if a connection failed on TLS: a certificate that did not verify (ours or the server's),
    a missing certificate or key, or TLS that could not be negotiated. Retrying does not fix these."""
    orig = error.orig
    if orig is None:
        return False
    module = type(orig).__module__
    if module.startswith("pymysql"):
        if orig.args and orig.args[0] == CR_SSL_CONNECTION_ERROR:
            return True
        # PyMySQL reports the ssl module's exception as "can't connect" or "lost connection".
        cause = getattr(orig, "original_exception", None) or orig.__cause__ or orig.__context__
        transient = (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError)
        return isinstance(cause, ssl.SSLError) and not isinstance(cause, transient)
    if module.startswith("psycopg2") and getattr(orig, "pgcode", None) is None:
        # libpq's connection errors carry no SQLSTATE; its (English) messages are all there is.
        text = str(orig).lower()
        if "ssl error" in text and not ("eof" in text or "syscall" in text):
            return True
        return any(marker in text for marker in _LIBPQ_TLS_MARKERS)
    return False


_LIBPQ_TLS_MARKERS = (
    "certificate",  # did not verify, names another host, file missing or unreadable, required by the server
    "private key",
    "sslmode",
    "does not support ssl",
)


def mask_secrets(url: URL) -> URL:
    """`url` with the values of SECRET_QUERY_KEYS replaced (by a word: URLs show *** percent-encoded)."""
    secret = [key for key in url.query if key in SECRET_QUERY_KEYS]
    if not secret:
        return url
    return url.update_query_dict({key: "REDACTED" for key in secret})

"""The authentication flags: parsed into Settings.security, and combinations that cannot work refused."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lineagedb.cli import _parser, build_settings, main
from lineagedb.config import ConfigurationError, Settings
from lineagedb.ops import mlmd_flags
from lineagedb.security.settings import DEFAULT_JWT_ALGORITHMS, SecuritySettings


def settings_for(*argv: str) -> Settings:
    normalized = mlmd_flags.normalize_argv(["serve", *argv])
    return build_settings(_parser().parse_args(normalized), normalized)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate and its key: good enough to serve as both server pair and client CA here."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture(autouse=True)
def _no_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("LINEAGEDB_AUTH", "LINEAGEDB_PAGE_TOKEN", "LINEAGEDB_TLS")):
            monkeypatch.delenv(name)


def test_defaults_leave_authentication_off() -> None:
    security = settings_for().security
    assert security == SecuritySettings()
    assert not security.authentication_enabled
    assert Settings().security == SecuritySettings()


def test_every_flag_reaches_its_field(tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    security = settings_for(
        f"--tls-cert={cert}",
        f"--tls-key={key}",
        f"--tls-client-ca={cert}",
        "--auth-tokens=/etc/lineagedb/tokens",
        "--auth-jwt-jwks=https://idp.example/jwks.json",
        "--auth-jwt-issuer=https://idp.example",
        "--auth-jwt-audience=lineagedb",
        "--auth-jwt-principal-claim=email",
        "--auth-jwt-groups-claim=roles",
        "--auth-jwt-namespace-claim=kubernetes.io.namespace",
        "--auth-jwt-algorithms=RS256, ES256",
        "--auth-jwt-leeway-s=5",
        "--auth-mtls-identity=san-uri",
        "--auth-anonymous=viewer@public",
        "--authz-policy=/etc/lineagedb/policy.yaml",
        "--page-token-key-file=/etc/lineagedb/page.key",
    ).security
    assert security == SecuritySettings(
        tokens_file="/etc/lineagedb/tokens",
        jwt_jwks="https://idp.example/jwks.json",
        jwt_issuer="https://idp.example",
        jwt_audience="lineagedb",
        jwt_principal_claim="email",
        jwt_groups_claim="roles",
        jwt_namespace_claim="kubernetes.io.namespace",
        jwt_algorithms=("RS256", "ES256"),
        jwt_leeway_s=5.0,
        mtls_identity="san-uri",
        anonymous="viewer@public",
        authz_policy="/etc/lineagedb/policy.yaml",
        page_token_key_file="/etc/lineagedb/page.key",
    )
    assert security.authentication_enabled
    assert security.anonymous_grant == ("viewer", "public")


def test_flags_come_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGEDB_AUTH_TOKENS", "/run/tokens")
    monkeypatch.setenv("LINEAGEDB_AUTH_JWT_JWKS", "/run/jwks.json")
    monkeypatch.setenv("LINEAGEDB_AUTH_JWT_ALGORITHMS", "ES256")
    monkeypatch.setenv("LINEAGEDB_AUTH_ANONYMOUS", "editor@team-a")
    security = settings_for().security
    assert (security.tokens_file, security.jwt_jwks, security.jwt_algorithms) == (
        "/run/tokens",
        "/run/jwks.json",
        ("ES256",),
    )
    assert security.anonymous_grant == ("editor", "team-a")
    assert security.jwt_principal_claim == "sub" and security.jwt_leeway_s == 30
    assert settings_for("--auth-tokens=/cli/tokens").security.tokens_file == "/cli/tokens"  # the command line wins


def test_jwt_defaults_when_only_the_key_set_is_given() -> None:
    security = settings_for("--auth-jwt-jwks=/k.json").security
    assert security.jwt_algorithms == DEFAULT_JWT_ALGORITHMS
    assert (security.jwt_principal_claim, security.jwt_groups_claim, security.jwt_namespace_claim) == (
        "sub",
        "groups",
        None,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--auth-jwt-issuer=https://idp"], "--auth-jwt-issuer need --auth-jwt-jwks"),
        (["--auth-jwt-audience=x", "--auth-jwt-leeway-s=1"], "--auth-jwt-audience, --auth-jwt-leeway-s need"),
        (["--auth-jwt-namespace-claim=ns"], "need --auth-jwt-jwks"),
        (["--auth-anonymous=viewer"], "ROLE@NAMESPACE"),
        (["--auth-anonymous=owner@team"], "role must be one of"),
        (["--auth-anonymous=viewer@"], "namespace"),
        (["--auth-anonymous=viewer@a b"], "namespace"),
        (["--auth-jwt-jwks=/k", "--auth-jwt-algorithms=none"], "never 'none' or HS"),
        (["--auth-jwt-jwks=/k", "--auth-jwt-algorithms=RS256,HS256"], "HS256"),
        (["--auth-jwt-jwks=/k", "--auth-jwt-algorithms=,"], "at least one"),
        (["--auth-jwt-jwks=/k", "--auth-jwt-leeway-s=-1"], "leeway"),
        (["--auth-mtls-identity=cn"], "needs TLS"),
    ],
)
def test_refused_combinations(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings_for(*argv)


def test_mtls_identity_needs_required_client_certificates(tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    with pytest.raises(ConfigurationError, match="--tls-client-ca"):
        settings_for(f"--tls-cert={cert}", f"--tls-key={key}", "--auth-mtls-identity=cn")
    with pytest.raises(ConfigurationError, match="client certificates required"):
        settings_for(
            f"--tls-cert={cert}",
            f"--tls-key={key}",
            f"--tls-client-ca={cert}",
            "--tls-require-client-cert=false",
            "--auth-mtls-identity=cn",
        )
    ok = settings_for(f"--tls-cert={cert}", f"--tls-key={key}", f"--tls-client-ca={cert}", "--auth-mtls-identity=cn")
    assert ok.security.mtls_identity == "cn"


def test_a_bad_environment_value_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGEDB_AUTH_MTLS_IDENTITY", "serial-number")
    with pytest.raises(ConfigurationError, match="mTLS identity must be one of"):
        settings_for()
    monkeypatch.setenv("LINEAGEDB_AUTH_MTLS_IDENTITY", "")
    monkeypatch.setenv("LINEAGEDB_AUTH_JWT_LEEWAY_S", "soon")
    assert main(["serve"]) == 2


def test_serve_exits_2_on_a_refused_combination(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--auth-anonymous=root@everything"]) == 2
    assert "role must be one of" in capsys.readouterr().err

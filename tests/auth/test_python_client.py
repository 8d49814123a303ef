"""lineagedb.client against a server with TLS, client certificates, bearer tokens, a policy and
namespaces: the token and namespace go with every call, TLS and mTLS come from PEM bytes, and
the server's refusals arrive as the ml_metadata error classes.

Cost: one server (about 2 s) and a few calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineagedb.client import MetadataStore, errors, proto
from tests.auth.conftest import AuthPki, create_namespaces, make_callers, sqlite_url, write_tokens
from tests.ops.conftest import Server, start

POLICY = """\
type_writers = "editor"

[namespaces.team-a]
editor = ["alice", "pipeline-runner"]

[namespaces.team-b]
editor = ["bob"]

[defaults]
pipeline-runner = "team-a"
"""


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, auth_pki: AuthPki) -> Iterator[tuple[Server, dict[str, str]]]:
    directory = tmp_path_factory.mktemp("python-client-auth")
    url = sqlite_url(directory)
    create_namespaces(url, directory, ["team-a", "team-b"])
    callers = make_callers({"alice": (), "bob": ()})
    tokens = write_tokens(directory / "tokens", callers.values())
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    server = start(
        [
            *("--host", "127.0.0.1", "--port", "0", "--database", url),
            *("--tls-cert", str(auth_pki.server_cert), "--tls-key", str(auth_pki.server_key)),
            *("--tls-client-ca", str(auth_pki.ca), "--auth-mtls-identity", "cn"),
            *("--auth-tokens", str(tokens), "--authz-policy", str(policy)),
        ],
        directory,
    )
    try:
        yield server, {name: caller.token for name, caller in callers.items()}
    finally:
        if server.process.poll() is None:
            assert server.stop() == 0


def _client(
    server: Server,
    pki: AuthPki,
    token: str | None = None,
    namespace: str | None = None,
    certificate_chain: bytes | None = None,
    private_key: bytes | None = None,
) -> MetadataStore:
    """A TLS client; the server asks every client for a certificate, so token callers present
    the "stranger" certificate (its CN has no role: the token alone decides what they may do)."""
    if certificate_chain is None:
        cert, key = pki.clients["stranger"]
        certificate_chain, private_key = cert.read_bytes(), key.read_bytes()
    return MetadataStore(
        f"localhost:{server.port}",
        token=token,
        namespace=namespace,
        root_certificates=pki.ca.read_bytes(),
        certificate_chain=certificate_chain,
        private_key=private_key,
        timeout=10.0,
    )


def test_token_and_namespace_travel_with_every_call(secured: tuple[Server, dict[str, str]], auth_pki: AuthPki) -> None:
    server, tokens = secured
    name = f"client.Model.{uuid.uuid4().hex[:8]}"
    with _client(server, auth_pki, token=tokens["alice"], namespace="team-a") as alice:
        type_id = alice.put_artifact_type(proto.ArtifactType(name=name))
        [artifact_id] = alice.put_artifacts([proto.Artifact(type_id=type_id, uri="s3://a/1")])
        assert [a.uri for a in alice.get_artifacts_by_id([artifact_id])] == ["s3://a/1"]
    with _client(server, auth_pki, token=tokens["bob"], namespace="team-b") as bob:
        assert bob.get_artifacts_by_id([artifact_id]) == []  # team-a's artifact is not in team-b
        with pytest.raises(errors.PermissionDeniedError):
            _read_in(server, auth_pki, tokens["bob"], "team-a")  # bob has no role in team-a
    with _client(server, auth_pki, token="not-a-token", namespace="team-a") as forged:
        with pytest.raises(errors.UnauthenticatedError) as refused:
            forged.get_artifact_types()
        assert "not-a-token" not in refused.value.message


def _read_in(server: Server, pki: AuthPki, token: str, namespace: str) -> None:
    with _client(server, pki, token=token, namespace=namespace) as store:
        store.get_artifacts()


def test_client_certificate_identifies_the_caller(secured: tuple[Server, dict[str, str]], auth_pki: AuthPki) -> None:
    server, _ = secured
    cert, key = auth_pki.clients["pipeline-runner"]
    with _client(server, auth_pki, certificate_chain=cert.read_bytes(), private_key=key.read_bytes()) as runner:
        type_id = runner.put_artifact_type(proto.ArtifactType(name=f"client.Data.{uuid.uuid4().hex[:8]}"))
        assert runner.get_artifact_types_by_id([type_id])[0].id == type_id
    stranger_cert, stranger_key = auth_pki.clients["stranger"]
    stranger = _client(
        server, auth_pki, certificate_chain=stranger_cert.read_bytes(), private_key=stranger_key.read_bytes()
    )
    with stranger, pytest.raises(errors.PermissionDeniedError):
        stranger.get_artifact_types()


def test_mlmd_ssl_config_is_honoured(secured: tuple[Server, dict[str, str]], auth_pki: AuthPki) -> None:
    server, _ = secured
    cert, key = auth_pki.clients["pipeline-runner"]
    config = proto.MetadataStoreClientConfig(host="localhost", port=server.port, client_timeout_sec=10.0)
    config.ssl_config.custom_ca = auth_pki.ca.read_text()
    config.ssl_config.server_cert = cert.read_text()  # MLMD's name for the client's own certificate
    config.ssl_config.client_key = key.read_text()
    with MetadataStore(config) as store:
        store.get_artifact_types()
    plaintext = MetadataStore(f"localhost:{server.port}", max_retries=1, timeout=10.0)
    with pytest.raises(errors.UnavailableError):
        plaintext.get_artifact_types()
    plaintext.close()


def test_embedded_mode_refuses_server_only_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="namespace, token: only for a server connection"):
        MetadataStore(f"sqlite:///{tmp_path / 'x.db'}", token="t", namespace="n")


def test_official_client_code_authenticates_from_the_environment(
    secured: tuple[Server, dict[str, str]], auth_pki: AuthPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code written for the official client cannot pass a token; through the drop-in it takes
    LINEAGEDB_TOKEN and LINEAGEDB_NAMESPACE from the environment."""
    server, tokens = secured
    cert, key = auth_pki.clients["stranger"]  # a certificate whose CN has no role
    config = proto.MetadataStoreClientConfig(host="localhost", port=server.port, client_timeout_sec=10.0)
    config.ssl_config.custom_ca = auth_pki.ca.read_text()
    config.ssl_config.server_cert = cert.read_text()
    config.ssl_config.client_key = key.read_text()
    monkeypatch.delenv("LINEAGEDB_TOKEN", raising=False)
    monkeypatch.delenv("LINEAGEDB_NAMESPACE", raising=False)
    with MetadataStore(config) as unauthenticated, pytest.raises(errors.PermissionDeniedError):
        unauthenticated.put_artifact_type(proto.ArtifactType(name=f"env.T.{uuid.uuid4().hex[:8]}"))
    monkeypatch.setenv("LINEAGEDB_TOKEN", tokens["alice"])
    monkeypatch.setenv("LINEAGEDB_NAMESPACE", "team-a")
    with MetadataStore(config) as alice:
        assert alice.put_artifact_type(proto.ArtifactType(name=f"env.T.{uuid.uuid4().hex[:8]}")) > 0
    with pytest.raises(ValueError):  # an explicit argument wins; embedded refuses it, the environment is ignored
        MetadataStore("sqlite://", token="explicit")
    with MetadataStore("sqlite://") as embedded:  # LINEAGEDB_TOKEN set: embedded mode does not mind
        assert embedded.get_artifact_types() == []

"""End-to-end authentication and authorization: real `lineagedb serve` processes with a tokens
file, a JWT key set, client certificates and a policy, driven over gRPC.

Helpers here are shared by the modules of this package: credentials (static tokens made in
process, JWTs signed with a local RSA key), a certificate authority whose client certificates
carry known common names, the namespace set-up (until `lineagedb namespace create` exists),
and `AuthServer`, a started server plus the files it reads and every secret sent to it.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import descriptor_pb2, message_factory
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from jwt.algorithms import RSAAlgorithm

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.security.static_tokens import new_token, tokens_file_line
from lineagedb.store import tenancy
from lineagedb.store.engine import create_engine
from lineagedb.store.unit_of_work import Database
from tests.ops.conftest import Server, run_to_exit, start, wait_for
from tests.pki import LOCALHOST_SANS, issue_certificate, new_key, write_pem

MLMD_SERVICE = svc.DESCRIPTOR.services_by_name["MetadataStoreService"]
MLMD_METHODS: tuple[str, ...] = tuple(method.name for method in MLMD_SERVICE.methods)
PUT_METHODS: tuple[str, ...] = tuple(name for name in MLMD_METHODS if name.startswith("Put"))
NAMESPACE_HEADER = "x-lineagedb-namespace"
ISSUER = "https://issuer.auth.test"
AUDIENCE = "lineagedb-e2e"
RELOADED = "reloaded the authorization policy and credentials"
RELOAD_REFUSED = "reload refused, keeping the previous policy and credentials"
CALL_TIMEOUT_S = 10.0

Metadata = Sequence[tuple[str, str]]


# ----------------------------------------------------------------------------- databases


def sqlite_url(directory: Path, name: str = "auth.db") -> str:
    return f"sqlite:///{directory / name}"


def create_namespaces(url: str, directory: Path, names: Iterable[str]) -> None:
    """Bring the database to the newest schema and create `names`.

    There is no `lineagedb namespace create` yet: the schema comes from the CLI, the
    namespaces from the store's own administration function. Swap the second half for
    the CLI once it exists.
    """
    code, _, stderr = run_to_exit(["db", "upgrade", "--database", url], directory)
    assert code == 0, stderr[-3000:]
    engine = create_engine(url)
    try:
        with Database(engine).transaction() as uow:
            for name in names:
                tenancy.create_namespace(uow, name, int(time.time() * 1000))
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Caller:
    principal: str
    groups: tuple[str, ...]
    token: str

    @property
    def line(self) -> str:
        return tokens_file_line(self.token, self.principal, self.groups)


def make_callers(spec: dict[str, tuple[str, ...]]) -> dict[str, Caller]:
    """principal -> groups in, principal -> Caller (with a fresh static token) out."""
    return {principal: Caller(principal, groups, new_token()) for principal, groups in spec.items()}


def write_tokens(path: Path, callers: Iterable[Caller]) -> Path:
    path.write_text("# principals of the end-to-end tests\n" + "".join(c.line + "\n" for c in callers))
    return path


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@dataclass(frozen=True)
class RsaSigner:
    kid: str
    private: rsa.RSAPrivateKey

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": "jay", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


def rsa_signer(kid: str = "e2e-rsa") -> RsaSigner:
    return RsaSigner(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def write_jwks(path: Path, *signers: RsaSigner) -> Path:
    path.write_text(json.dumps({"keys": [signer.jwk() for signer in signers]}))
    return path


# -------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class AuthPki:
    """A CA, a server certificate for localhost, and client certificates by common name."""

    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # CN -> (certificate, key)


CLIENT_CNS = ("pipeline-runner", "stranger")


@pytest.fixture(scope="session")
def auth_pki(tmp_path_factory: pytest.TempPathFactory) -> AuthPki:
    directory = tmp_path_factory.mktemp("auth-pki")
    ca_key = new_key()
    ca = issue_certificate("LineageDB auth test CA", ca_key, None)
    server_key = new_key()
    server = issue_certificate("localhost", server_key, (ca.subject, ca_key), sans=LOCALHOST_SANS)
    clients: dict[str, tuple[Path, Path]] = {}
    for cn in CLIENT_CNS:
        key = new_key()
        cert = issue_certificate(cn, key, (ca.subject, ca_key))
        clients[cn] = (write_pem(directory / f"{cn}.pem", cert), write_pem(directory / f"{cn}.key", key))
    return AuthPki(
        ca=write_pem(directory / "ca.pem", ca),
        server_cert=write_pem(directory / "server.pem", server),
        server_key=write_pem(directory / "server.key", server_key),
        clients=clients,
    )


# The official client's interpreter: the fixture tests/ops already defines.
from tests.ops.conftest import mlmd_python  # noqa: E402, F401

# ----------------------------------------------------------------------------- servers


def request_for(method: str) -> Message:
    """The empty (default) request message of an MLMD method."""
    cls: type[Message] = message_factory.GetMessageClass(MLMD_SERVICE.methods_by_name[method].input_type)
    return cls()


@dataclass
class AuthServer:
    """A running server with authentication on, the files it reads, and the secrets it was sent."""

    server: Server
    directory: Path
    tokens_file: Path
    policy_file: Path
    callers: dict[str, Caller]
    secrets: list[str] = field(default_factory=list)
    _channel: grpc.Channel | None = None

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.server.address)
        return self._channel

    @property
    def stub(self) -> svc_grpc.MetadataStoreServiceStub:
        return svc_grpc.MetadataStoreServiceStub(self.channel)

    def token(self, principal: str) -> str:
        return self.callers[principal].token

    def metadata(self, principal: str | None = None, namespace: str | None = None, extra: Metadata = ()) -> Metadata:
        md: list[tuple[str, str]] = []
        if principal is not None:
            md += bearer(self.token(principal))
        if namespace is not None:
            md.append((NAMESPACE_HEADER, namespace))
        return [*md, *extra]

    def call(
        self,
        method: str,
        request: Message | None = None,
        as_: str | None = None,
        namespace: str | None = None,
        extra: Metadata = (),
    ) -> Any:
        """Call an MLMD method; raises grpc.RpcError as the client would see it."""
        metadata = self.metadata(as_, namespace, extra)
        return getattr(self.stub, method)(request or request_for(method), metadata=metadata, timeout=CALL_TIMEOUT_S)

    def call_with(self, method: str, metadata: Metadata, request: Message | None = None) -> Any:
        """Call an MLMD method with exactly `metadata` (the default request unless one is given)."""
        return getattr(self.stub, method)(request or request_for(method), metadata=metadata, timeout=CALL_TIMEOUT_S)

    def code(
        self,
        method: str,
        request: Message | None = None,
        as_: str | None = None,
        namespace: str | None = None,
        extra: Metadata = (),
    ) -> tuple[grpc.StatusCode, str]:
        """The status code and details of a call (OK and "" when it succeeds)."""
        try:
            self.call(method, request, as_, namespace, extra)
        except grpc.RpcError as error:
            return error.code(), error.details() or ""
        return grpc.StatusCode.OK, ""

    def log(self) -> str:
        return self.server.stderr()

    def reload(self, expect: str = RELOADED) -> None:
        """SIGHUP, then wait until the log says `expect` once more than before."""
        before = self.log().count(expect)
        self.server.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: self.log().count(expect) > before, 15), f"no {expect!r} in\n{self.log()[-3000:]}"

    def assert_log_has_no_secret(self) -> None:
        log = self.log()
        leaked = [secret[:12] + "..." for secret in self.secrets if secret in log]
        assert not leaked, f"the server log contains credentials: {leaked}"

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.server.process.poll() is None:
            self.server.stop()


def start_auth_server(
    directory: Path,
    callers: dict[str, Caller],
    policy: str,
    namespaces: Iterable[str],
    extra_args: Sequence[str] = (),
) -> AuthServer:
    """A server on loopback with `callers` in its tokens file and `policy` as its policy."""
    url = sqlite_url(directory)
    create_namespaces(url, directory, namespaces)
    tokens_file = write_tokens(directory / "tokens", callers.values())
    policy_file = directory / "policy.toml"
    policy_file.write_text(policy)
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database",
        url,
        "--log-level",
        "DEBUG",
        "--auth-tokens",
        str(tokens_file),
        "--authz-policy",
        str(policy_file),
        *extra_args,
    ]
    server = start(args, directory)
    return AuthServer(server, directory, tokens_file, policy_file, callers, secrets=[c.token for c in callers.values()])


# --------------------------------------------------------------------------- reflection


def reflect(channel: grpc.Channel, metadata: Metadata) -> dict[str, list[str]]:
    """service -> full method names ("/pkg.Service/Method"), through server reflection."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    def ask(request: reflection_pb2.ServerReflectionRequest) -> reflection_pb2.ServerReflectionResponse:
        responses = list(stub.ServerReflectionInfo(iter([request]), metadata=metadata, timeout=CALL_TIMEOUT_S))
        assert len(responses) == 1, responses
        response: reflection_pb2.ServerReflectionResponse = responses[0]
        assert not response.HasField("error_response"), response.error_response
        return response

    listed = ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    services = [service.name for service in listed.list_services_response.service]
    methods: dict[str, list[str]] = {}
    for service in services:
        answer = ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=service))
        found: list[str] = []
        for raw in answer.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
            for described in proto.service:
                full_name = f"{proto.package}.{described.name}" if proto.package else described.name
                if full_name == service:
                    found += [f"/{service}/{method.name}" for method in described.method]
        assert found, f"reflection describes no methods for {service}"
        methods[service] = found
    return methods


# ------------------------------------------------------------------------------ helpers


def unique(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def artifact_type(name: str | None = None) -> mlmd.ArtifactType:
    return mlmd.ArtifactType(name=name or unique("auth.Dataset"))


TOKEN_LIKE = re.compile(r"ldb_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

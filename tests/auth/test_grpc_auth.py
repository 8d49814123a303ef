"""Authentication and authorization end to end: a real server, every MLMD method, every refusal.

One server per module fixture (`main`: static tokens, JWTs, the default policy; `open_server`:
anonymous viewers of `public` and `type_writers = "editor"`), SQLite in a temporary directory.
Tests that change the server's files (SIGHUP) put them back before they finish.
"""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2 as svc
from lineagedb.proto.ml_metadata.proto import metadata_store_service_pb2_grpc as svc_grpc
from lineagedb.security.static_tokens import new_token
from lineagedb.store.pagination import decode_token
from tests.auth.conftest import (
    AUDIENCE,
    ISSUER,
    MLMD_METHODS,
    PUT_METHODS,
    RELOAD_REFUSED,
    TOKEN_LIKE,
    AuthServer,
    Metadata,
    RsaSigner,
    artifact_type,
    bearer,
    make_callers,
    reflect,
    request_for,
    rsa_signer,
    sqlite_url,
    start_auth_server,
    unique,
    write_jwks,
    write_tokens,
)
from tests.ops.conftest import health_status, spawn, start

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT
TYPE_METHODS = ("PutArtifactType", "PutExecutionType", "PutContextType", "PutTypes")

POLICY = """\
cluster_admins = ["root"]
type_writers = "admin"

[namespaces.team-a]
viewer = ["carol"]
editor = ["group:team-a"]
admin = ["dave"]

[namespaces.team-b]
editor = ["group:team-b"]

[namespaces.shared]
viewer = ["group:team-a", "group:team-b"]

[defaults]
"group:team-a" = "team-a"
"group:team-b" = "team-b"
"""
PRINCIPALS: dict[str, tuple[str, ...]] = {
    "root": (),  # cluster admin
    "alice": ("team-a",),  # editor of team-a, viewer of shared
    "bob": ("team-b",),  # editor of team-b, viewer of shared
    "carol": (),  # viewer of team-a
    "dave": (),  # admin of team-a
    "erin": ("team-a",),  # like alice; her token is revoked by a test
    "nobody": (),  # a valid token and no role anywhere
}
NAMESPACES = ("team-a", "team-b", "shared", "public")
SPOOFED: Metadata = (
    ("x-forwarded-user", "root"),
    ("kubeflow-userid", "root"),
    ("x-remote-user", "root"),
    ("x-auth-request-user", "root"),
    ("x-forwarded-groups", "team-a"),
    ("x-lineagedb-principal", "root"),
)


@dataclass
class Main:
    """The main server, the JWT signer it trusts, and the types every test writes against."""

    srv: AuthServer
    signer: RsaSigner
    artifact_type_id: int
    execution_type_id: int
    context_type_id: int

    def jwt(self, **claims: object) -> str:
        token = self.signer.sign(**claims)
        self.srv.secrets.append(token)
        return token


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Main]:
    directory = tmp_path_factory.mktemp("grpc-auth")
    signer = rsa_signer()
    jwks = write_jwks(directory / "jwks.json", signer)
    srv = start_auth_server(
        directory,
        make_callers(PRINCIPALS),
        POLICY,
        NAMESPACES,
        [
            "--auth-jwt-jwks",
            str(jwks),
            "--auth-jwt-issuer",
            ISSUER,
            "--auth-jwt-audience",
            AUDIENCE,
        ],
    )
    try:
        a = srv.call(
            "PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name="auth.Data")), "root"
        )
        e = srv.call(
            "PutExecutionType",
            svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name="auth.Train")),
            "root",
        )
        c = srv.call(
            "PutContextType", svc.PutContextTypeRequest(context_type=mlmd.ContextType(name="auth.Run")), "root"
        )
        yield Main(srv, signer, a.type_id, e.type_id, c.type_id)
    finally:
        srv.close()
    # Secrets hygiene over the whole module: every token and JWT sent, valid or not.
    srv.assert_log_has_no_secret()


def put_artifacts(m: Main, as_: str, count: int = 1, uri: str = "", namespace: str | None = None) -> list[int]:
    uri = uri or unique("s3://auth")
    request = svc.PutArtifactsRequest(
        artifacts=[mlmd.Artifact(type_id=m.artifact_type_id, uri=f"{uri}/{i}") for i in range(count)]
    )
    return list(m.srv.call("PutArtifacts", request, as_, namespace).artifact_ids)


def visible_ids(srv: AuthServer, as_: str | None, ids: list[int]) -> list[int]:
    response = srv.call("GetArtifactsByID", svc.GetArtifactsByIDRequest(artifact_ids=ids), as_)
    return sorted(artifact.id for artifact in response.artifacts)


def counts(srv: AuthServer) -> tuple[int, ...]:
    """What the cluster admin sees: numbers of types and nodes (to prove nothing was written)."""
    root = "root"
    return (
        len(srv.call("GetArtifactTypes", as_=root).artifact_types),
        len(srv.call("GetExecutionTypes", as_=root).execution_types),
        len(srv.call("GetContextTypes", as_=root).context_types),
        len(srv.call("GetArtifacts", as_=root).artifacts),
        len(srv.call("GetExecutions", as_=root).executions),
        len(srv.call("GetContexts", as_=root).contexts),
    )


def refusals(
    srv: AuthServer, metadata: Metadata, expected: grpc.StatusCode, secrets: list[str], methods: tuple[str, ...]
) -> list[str]:
    """Call each method with `metadata`; return what did not answer `expected`, or echoed a secret."""
    wrong: list[str] = []
    for method in methods:
        try:
            srv.call_with(method, metadata)
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
            if code is not expected:
                wrong.append(f"{method}: {code.name} {details!r}")
            leaked = [s for s in secrets if s and s in details] or TOKEN_LIKE.findall(details)
            if leaked:
                wrong.append(f"{method}: details echo a credential")
            continue
        wrong.append(f"{method}: OK")
    return wrong


# ------------------------------------------------------------------- authentication


def test_every_method_refuses_missing_malformed_and_unknown_credentials(main: Main) -> None:
    srv = main.srv
    alice, bob = srv.token("alice"), srv.token("bob")
    unknown = new_token()
    srv.secrets.append(unknown)
    cases: dict[str, Metadata] = {
        "no credentials": [],
        "Basic scheme": [("authorization", "Basic eDp5")],
        "Basic x": [("authorization", "Basic x")],
        "Bearer without a token": [("authorization", "Bearer")],
        "Bearer and a space": [("authorization", "Bearer ")],
        "two tokens in one value": [("authorization", f"Bearer {alice} {bob}")],
        "two authorization entries": [*bearer(alice), *bearer(bob)],
        "a token without the scheme": [("authorization", alice)],
        "unknown token": bearer(unknown),
        "the hash instead of the token": [("authorization", "Bearer " + srv.callers["alice"].line.split()[0])],
        "spoofed identity headers only": SPOOFED,
        "spoofed identity headers and an unknown token": [*SPOOFED, *bearer(unknown)],
    }
    wrong = {
        name: failures
        for name, metadata in cases.items()
        if (failures := refusals(srv, metadata, UNAUTHENTICATED, [alice, bob, unknown], MLMD_METHODS))
    }
    assert not wrong, wrong
    srv.assert_log_has_no_secret()


def test_a_token_removed_from_the_file_stops_working_after_sighup(main: Main) -> None:
    srv = main.srv
    erin = srv.token("erin")
    assert srv.code("GetArtifactTypes", as_="erin") == (OK, "")
    jay = main.jwt(groups=["team-a"])
    # Erin stays revoked for the rest of the module (no other test uses her).
    write_tokens(srv.tokens_file, [c for name, c in srv.callers.items() if name != "erin"])
    srv.reload()
    wrong = refusals(srv, bearer(erin), UNAUTHENTICATED, [erin], MLMD_METHODS)
    assert not wrong, wrong
    # Everyone else, and JWTs, are unaffected.
    assert srv.code("GetArtifactTypes", as_="alice") == (OK, "")
    assert srv.call_with("GetArtifactTypes", bearer(jay)).artifact_types is not None
    srv.assert_log_has_no_secret()


def test_jwt_valid_works_and_every_bad_one_is_unauthenticated(main: Main) -> None:
    srv = main.srv
    valid = main.jwt(sub="jay", groups=["team-a"])
    response = srv.stub.PutArtifacts(
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=main.artifact_type_id, uri="s3://jwt/1")]),
        metadata=bearer(valid),
        timeout=10,
    )
    [jay_artifact] = response.artifact_ids
    # jay acts in team-a (group default): alice sees it, bob does not.
    assert visible_ids(srv, "alice", [jay_artifact]) == [jay_artifact]
    assert visible_ids(srv, "bob", [jay_artifact]) == []
    # Without the groups claim jay has no role: authenticated, but denied.
    no_groups = main.jwt(sub="jay")
    with pytest.raises(grpc.RpcError) as denied:
        srv.stub.GetArtifacts(request_for("GetArtifacts"), metadata=bearer(no_groups), timeout=10)
    assert denied.value.code() is PERMISSION_DENIED

    forger = RsaSigner(main.signer.kid, rsa_signer().private)  # same key id, other key
    now = int(time.time())
    bad = {
        "wrong signature": forger.sign(groups=["team-a"]),
        "expired": main.signer.sign(groups=["team-a"], iat=now - 7200, exp=now - 3600),
        "wrong issuer": main.signer.sign(groups=["team-a"], iss="https://evil.test"),
        "wrong audience": main.signer.sign(groups=["team-a"], aud="someone-else"),
        "no expiry": main.signer.sign(groups=["team-a"], exp=None),
        "signature stripped": valid.rsplit(".", 1)[0] + ".",
        "cluster admin claimed with a forged key": forger.sign(sub="root"),
    }
    srv.secrets.extend(bad.values())
    wrong = {
        name: failures
        for name, token in bad.items()
        if (failures := refusals(srv, bearer(token), UNAUTHENTICATED, [token, valid], MLMD_METHODS))
    }
    assert not wrong, wrong
    srv.assert_log_has_no_secret()


def test_health_is_public_and_reflection_needs_credentials(main: Main) -> None:
    srv = main.srv
    assert health_status(srv.channel) == "SERVING"
    assert health_status(srv.channel, "ml_metadata.MetadataStoreService") == "SERVING"
    unknown = new_token()
    srv.secrets.append(unknown)
    for metadata in ([], bearer(unknown), [("authorization", "Basic x")]):
        with pytest.raises(grpc.RpcError) as refused:
            reflect(srv.channel, metadata)
        assert refused.value.code() is UNAUTHENTICATED, metadata
        assert unknown not in (refused.value.details() or "")
    # Any valid identity may read the schema, even one without a role.
    services = reflect(srv.channel, bearer(srv.token("nobody")))
    assert "ml_metadata.MetadataStoreService" in services


# -------------------------------------------------------------------- authorization


def test_a_viewer_cannot_call_any_put_and_nothing_is_written(main: Main) -> None:
    srv = main.srv
    before = counts(srv)
    wrong = refusals(srv, bearer(srv.token("carol")), PERMISSION_DENIED, [srv.token("carol")], PUT_METHODS)
    assert not wrong, wrong
    # Real writes in the namespace carol can read.
    name = unique("auth.ViewerType")
    writes = {
        "PutArtifacts": svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=main.artifact_type_id, uri="v")]),
        "PutExecutions": svc.PutExecutionsRequest(executions=[mlmd.Execution(type_id=main.execution_type_id)]),
        "PutContexts": svc.PutContextsRequest(contexts=[mlmd.Context(type_id=main.context_type_id, name=name)]),
        "PutExecution": svc.PutExecutionRequest(execution=mlmd.Execution(type_id=main.execution_type_id)),
        "PutLineageSubgraph": svc.PutLineageSubgraphRequest(
            executions=[mlmd.Execution(type_id=main.execution_type_id)]
        ),
        "PutArtifactType": svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=name)),
        "PutTypes": svc.PutTypesRequest(artifact_types=[mlmd.ArtifactType(name=name)]),
    }
    for method, request in writes.items():
        for namespace in (None, "team-a"):
            assert srv.code(method, request, "carol", namespace)[0] is PERMISSION_DENIED, (method, namespace)
    assert counts(srv) == before
    assert (
        srv.code("GetArtifactType", svc.GetArtifactTypeRequest(type_name=name), "root")[0] is grpc.StatusCode.NOT_FOUND
    )


def test_an_editor_writes_nodes_but_not_types_under_the_default_policy(main: Main) -> None:
    srv = main.srv
    before = counts(srv)
    name = unique("auth.EditorType")
    requests = {
        "PutArtifactType": svc.PutArtifactTypeRequest(artifact_type=mlmd.ArtifactType(name=name)),
        "PutExecutionType": svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name=name)),
        "PutContextType": svc.PutContextTypeRequest(context_type=mlmd.ContextType(name=name)),
        "PutTypes": svc.PutTypesRequest(artifact_types=[mlmd.ArtifactType(name=name)]),
    }
    assert set(requests) == set(TYPE_METHODS)
    for method, request in requests.items():
        code, details = srv.code(method, request, "alice")
        assert code is PERMISSION_DENIED, (method, code, details)
        assert "needs admin" in details
        assert srv.code(method, request, "alice", "team-a")[0] is PERMISSION_DENIED
    assert counts(srv) == before
    # Nodes in her namespace are fine; in shared (viewer) they are not.
    [mine] = put_artifacts(main, "alice")
    assert visible_ids(srv, "alice", [mine]) == [mine]
    code, _ = srv.code(
        "PutArtifacts",
        svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=main.artifact_type_id, uri="x")]),
        "alice",
        "shared",
    )
    assert code is PERMISSION_DENIED


def test_namespace_admins_and_cluster_admins_write_types(main: Main) -> None:
    srv = main.srv
    by_dave = srv.call("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type()), "dave")
    assert by_dave.type_id > 0
    # dave is admin of team-a only: not elsewhere.
    code, _ = srv.code("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type()), "dave", "team-b")
    assert code is PERMISSION_DENIED
    by_root = srv.call("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type()), "root")
    assert by_root.type_id > 0
    both = srv.call(
        "PutTypes",
        svc.PutTypesRequest(
            artifact_types=[artifact_type()], execution_types=[mlmd.ExecutionType(name=unique("auth.Exec"))]
        ),
        "root",
        "team-b",
    )
    assert len(both.artifact_type_ids) == 1 and len(both.execution_type_ids) == 1
    # A namespace admin is also an editor there.
    [node] = put_artifacts(main, "dave")
    assert visible_ids(srv, "carol", [node]) == [node]


def test_namespaces_isolate_reads_and_writes(main: Main) -> None:
    srv = main.srv
    [alices] = put_artifacts(main, "alice")
    [bobs] = put_artifacts(main, "bob")
    [shared] = put_artifacts(main, "root", namespace="shared")
    assert visible_ids(srv, "alice", [alices, bobs, shared]) == [alices, shared]
    assert visible_ids(srv, "bob", [alices, bobs, shared]) == [bobs, shared]
    assert visible_ids(srv, "carol", [alices, bobs, shared]) == [alices]
    assert visible_ids(srv, "root", [alices, bobs, shared]) == sorted([alices, bobs, shared])
    listed = {a.id for a in srv.call("GetArtifacts", as_="bob").artifacts}
    assert bobs in listed and alices not in listed
    # No role: denied outright, not an empty answer.
    assert srv.code("GetArtifacts", as_="nobody")[0] is PERMISSION_DENIED
    by_id = svc.GetArtifactsByIDRequest(artifact_ids=[alices])
    assert srv.code("GetArtifactsByID", by_id, "nobody")[0] is PERMISSION_DENIED


def test_the_namespace_header_needs_a_role_and_a_valid_name(main: Main) -> None:
    srv = main.srv
    before = counts(srv)
    write = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=main.artifact_type_id, uri="s3://ns")])
    for namespace in ("team-b", "no-such-namespace", "default"):
        for method, request in (("GetArtifacts", None), ("PutArtifacts", write), ("GetArtifactTypes", None)):
            code, details = srv.code(method, request, "alice", namespace)
            assert code is PERMISSION_DENIED, (namespace, method, code, details)
    # Viewer of shared: may read there, not write.
    assert srv.code("GetArtifacts", None, "alice", "shared")[0] is OK
    assert srv.code("PutArtifacts", write, "alice", "shared")[0] is PERMISSION_DENIED
    invalid = ("Team-A", "team a", "-team", "team-", "a" * 64, "team/a", "team%2Fa", "*", ".")
    for namespace in invalid:
        for method, request in (("GetArtifacts", None), ("PutArtifacts", write)):
            code, details = srv.code(method, request, "alice", namespace)
            assert code is INVALID_ARGUMENT, (namespace, method, code, details)
    assert srv.code("GetArtifacts", None, "root", "Team-A")[0] is INVALID_ARGUMENT
    assert counts(srv) == before


def test_spoofed_identity_headers_change_nothing(main: Main) -> None:
    srv = main.srv
    [bobs] = put_artifacts(main, "bob")
    request = svc.PutArtifactTypeRequest(artifact_type=artifact_type())
    assert srv.code("PutArtifactType", request, "alice", extra=SPOOFED)[0] is PERMISSION_DENIED
    assert visible_ids_with(srv, "alice", [bobs], SPOOFED) == []
    assert srv.code("GetArtifacts", None, "nobody", extra=SPOOFED)[0] is PERMISSION_DENIED
    assert srv.code("GetArtifacts", None, None, extra=SPOOFED)[0] is UNAUTHENTICATED
    # A principal named like a header value is still only what its token says.
    as_dave = [("x-forwarded-user", "dave")]
    assert srv.code("PutArtifactType", request, "carol", extra=as_dave)[0] is PERMISSION_DENIED


def visible_ids_with(srv: AuthServer, as_: str, ids: list[int], extra: Metadata) -> list[int]:
    response = srv.call("GetArtifactsByID", svc.GetArtifactsByIDRequest(artifact_ids=ids), as_, extra=extra)
    return sorted(artifact.id for artifact in response.artifacts)


# ---------------------------------------------------------------------- page tokens

BY = mlmd.ListOperationOptions.OrderByField
Order = tuple[BY.Field.ValueType, bool]  # (order_by_field.field, is_asc)


def _page(
    srv: AuthServer, as_: str, size: int, filter_query: str = "", token: str = "", order: Order | None = None
) -> tuple[list[int], str]:
    options = mlmd.ListOperationOptions(max_result_size=size, filter_query=filter_query, next_page_token=token)
    if order is not None:
        options.order_by_field.field, options.order_by_field.is_asc = order
    response = srv.call("GetArtifacts", svc.GetArtifactsRequest(options=options), as_)
    return [a.id for a in response.artifacts], response.next_page_token


def _all_pages(srv: AuthServer, as_: str, size: int, filter_query: str, order: Order | None = None) -> list[int]:
    ids, token = _page(srv, as_, size, filter_query, order=order)
    pages = 1
    while token:
        more, token = _page(srv, as_, size, filter_query, token, order)
        ids += more
        pages += 1
        assert pages < 50
    return ids


def test_page_tokens_work_for_their_principal_to_the_end(main: Main) -> None:
    srv = main.srv
    prefix = unique("s3://paged")
    ids = put_artifacts(main, "alice", 5, prefix)
    filter_query = f"uri LIKE '{prefix}/%'"
    assert sorted(_all_pages(srv, "alice", 2, filter_query)) == sorted(ids)
    by_time = _all_pages(srv, "alice", 2, filter_query, (BY.CREATE_TIME, True))
    assert sorted(by_time) == sorted(ids) and len(by_time) == 5
    desc = _all_pages(srv, "alice", 3, filter_query, (BY.ID, False))
    assert desc == sorted(ids, reverse=True)
    # The cluster admin pages everything, with its own tokens.
    assert set(ids) <= set(_all_pages(srv, "root", 4, ""))


def test_page_tokens_replayed_or_edited_are_invalid(main: Main) -> None:
    srv = main.srv
    prefix = unique("s3://replay")
    ids = put_artifacts(main, "alice", 5, prefix)
    filter_query = f"uri LIKE '{prefix}/%'"
    first, token = _page(srv, "alice", 2, filter_query)
    assert len(first) == 2 and token
    body, mac = token.split(".")

    def refused(as_: str, page_token: str, query: str = filter_query, order: Order | None = None) -> grpc.StatusCode:
        try:
            _page(srv, as_, 2, query, page_token, order)
        except grpc.RpcError as error:
            return error.code()
        return OK

    # Replayed by other principals, including ones who can read the same rows.
    for other in ("bob", "carol", "dave", "root"):
        assert refused(other, token) is INVALID_ARGUMENT, other
    # Edited: a character of the MAC, the MAC dropped, the body swapped for an unsigned MLMD token.
    flipped = ("B" if mac[0] == "A" else "A") + mac[1:]
    forged = mlmd.ListOperationNextPageToken()
    forged.id_offset = 0
    forged.field_offset = 0
    forged.set_options.CopyFrom(mlmd.ListOperationOptions(max_result_size=2, filter_query=filter_query))
    unsigned = base64.urlsafe_b64encode(forged.SerializeToString()).decode().rstrip("=")
    # The genuine body with its filter removed, re-encoded, under the genuine MAC.
    unfiltered = decode_token(body)
    unfiltered.set_options.ClearField("filter_query")
    unfiltered_body = base64.urlsafe_b64encode(unfiltered.SerializeToString()).decode().rstrip("=")
    edited = {
        "the filter removed from the body": f"{unfiltered_body}.{mac}",
        "a MAC character changed": f"{body}.{flipped}",
        "MAC dropped (the MLMD token alone)": body,
        "MAC truncated": f"{body}.{mac[:-2]}",
        "an unsigned MLMD token": unsigned,
        "an unsigned MLMD token with the old MAC": f"{unsigned}.{mac}",
        "two MACs": f"{body}.{mac}.{mac}",
        "the body edited": f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{mac}",
    }
    for name, page_token in edited.items():
        assert refused("alice", page_token) is INVALID_ARGUMENT, name
    # Continuing another ordering is refused too.
    assert refused("alice", token, order=(BY.CREATE_TIME, True)) is INVALID_ARGUMENT
    # The untouched token still works for alice afterwards.
    rest, _ = _page(srv, "alice", 2, filter_query, token)
    assert rest and not set(rest) & set(first) and set(rest) <= set(ids)


def test_a_page_token_issued_for_another_filter_query_is_invalid(main: Main) -> None:
    srv = main.srv
    prefix = unique("s3://filtered")
    put_artifacts(main, "alice", 5, prefix)
    filter_query = f"uri LIKE '{prefix}/%'"
    _, token = _page(srv, "alice", 2, filter_query)
    assert token
    for other_query in ("", "uri LIKE '%'", f"uri LIKE '{prefix}/1'"):
        try:
            _page(srv, "alice", 2, other_query, token)
        except grpc.RpcError as error:
            assert error.code() is INVALID_ARGUMENT, (other_query, error)
            continue
        pytest.fail(f"a token issued for {filter_query!r} continued a listing with filter_query {other_query!r}")


# ------------------------------------------------------------------------- reloading


def test_sighup_with_a_broken_policy_or_tokens_file_keeps_the_old_ones(main: Main) -> None:
    srv = main.srv
    original_policy = srv.policy_file.read_text()
    original_tokens = srv.tokens_file.read_text()
    type_request = svc.PutArtifactTypeRequest(artifact_type=artifact_type())
    raw = new_token()
    srv.secrets.append(raw)
    broken = {
        "not TOML": (srv.policy_file, "cluster_admins = [\n", "not valid TOML"),
        "an unknown role": (srv.policy_file, original_policy + '\n[namespaces.x]\nsuperuser = ["alice"]\n', "role"),
        # Would make alice a cluster admin if only the parse were lenient.
        "an unknown key": (srv.policy_file, 'cluster_admin = ["alice"]\n' + original_policy, "unknown key"),
        "a raw token in the tokens file": (srv.tokens_file, original_tokens + f"{raw} alice\n", "line"),
    }
    try:
        for name, (path, text, reason) in broken.items():
            path.write_text(text)
            before = srv.log().count(RELOAD_REFUSED)
            srv.reload(expect=RELOAD_REFUSED)
            refusal = [line for line in srv.log().splitlines() if RELOAD_REFUSED in line][before:]
            assert refusal and reason in refusal[-1], (name, refusal)
            # The old policy and tokens are still in force.
            assert srv.code("GetArtifacts", as_="alice")[0] is OK, name
            assert srv.code("PutArtifactType", type_request, "alice")[0] is PERMISSION_DENIED, name
            assert srv.code("PutArtifactType", type_request, "root")[0] is OK, name
            assert srv.code("GetArtifacts", as_="nobody")[0] is PERMISSION_DENIED, name
            path.write_text(original_policy if path == srv.policy_file else original_tokens)
    finally:
        srv.policy_file.write_text(original_policy)
        srv.tokens_file.write_text(original_tokens)
    srv.reload()
    assert srv.code("GetArtifacts", as_="alice")[0] is OK
    srv.assert_log_has_no_secret()


# ------------------------------------------------------------ anonymous, type writers

OPEN_POLICY = """\
cluster_admins = ["root"]
type_writers = "editor"

[namespaces.team-a]
viewer = ["carol"]
editor = ["group:team-a"]

[namespaces.shared]
viewer = ["group:team-a"]

[defaults]
"group:team-a" = "team-a"
"""


@dataclass
class Open:
    srv: AuthServer
    public_id: int
    team_a_id: int
    type_id: int


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Open]:
    directory = tmp_path_factory.mktemp("grpc-auth-open")
    callers = make_callers({"root": (), "alice": ("team-a",), "carol": ()})
    srv = start_auth_server(directory, callers, OPEN_POLICY, NAMESPACES, ["--auth-anonymous", "viewer@public"])
    try:
        type_id = srv.call("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type()), "root").type_id

        def put(namespace: str) -> int:
            request = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=type_id, uri=f"s3://{namespace}")])
            [node] = srv.call("PutArtifacts", request, "root", namespace).artifact_ids
            return int(node)

        yield Open(srv, put("public"), put("team-a"), type_id)
    finally:
        srv.close()
    srv.assert_log_has_no_secret()


def test_anonymous_callers_read_public_only(open_server: Open) -> None:
    srv = open_server.srv
    both = [open_server.public_id, open_server.team_a_id]
    assert visible_ids(srv, None, both) == [open_server.public_id]
    assert [a.id for a in srv.call("GetArtifacts").artifacts] == [open_server.public_id]
    assert srv.code("GetArtifacts", namespace="public")[0] is OK
    assert visible_ids(srv, "carol", both) == [open_server.team_a_id]
    # Nothing else: other namespaces, writes, types.
    assert srv.code("GetArtifacts", namespace="team-a")[0] is PERMISSION_DENIED
    before = counts(srv)
    write = svc.PutArtifactsRequest(artifacts=[mlmd.Artifact(type_id=open_server.type_id, uri="s3://anon")])
    for namespace in (None, "public", "team-a"):
        assert srv.code("PutArtifacts", write, namespace=namespace)[0] is PERMISSION_DENIED, namespace
    new_type = svc.PutArtifactTypeRequest(artifact_type=artifact_type())
    assert srv.code("PutArtifactType", new_type)[0] is PERMISSION_DENIED
    wrong = refusals(srv, [], PERMISSION_DENIED, [], PUT_METHODS)
    assert not wrong, wrong
    assert counts(srv) == before
    # Bad credentials never fall back to anonymous access.
    unknown = new_token()
    srv.secrets.append(unknown)
    for metadata in (bearer(unknown), [("authorization", "Basic x")], [("authorization", "Bearer")]):
        wrong = refusals(srv, metadata, UNAUTHENTICATED, [unknown], ("GetArtifacts", "GetArtifactsByID"))
        assert not wrong, (metadata, wrong)
    # Spoofed headers do not lift an anonymous caller.
    assert srv.code("GetArtifacts", namespace="team-a", extra=SPOOFED)[0] is PERMISSION_DENIED


def test_type_writers_editor_lets_editors_write_types_where_they_edit(open_server: Open) -> None:
    srv = open_server.srv
    for method, request in (
        ("PutArtifactType", svc.PutArtifactTypeRequest(artifact_type=artifact_type())),
        ("PutExecutionType", svc.PutExecutionTypeRequest(execution_type=mlmd.ExecutionType(name=unique("e")))),
        ("PutContextType", svc.PutContextTypeRequest(context_type=mlmd.ContextType(name=unique("c")))),
        ("PutTypes", svc.PutTypesRequest(artifact_types=[artifact_type()])),
    ):
        assert srv.code(method, request, "alice") == (OK, ""), method
        # Not as a viewer (shared), nor for a viewer anywhere.
        assert srv.code(method, request, "alice", "shared")[0] is PERMISSION_DENIED, method
        assert srv.code(method, request, "carol")[0] is PERMISSION_DENIED, method


# -------------------------------------------------------------------- startup checks


def test_unsafe_or_broken_configurations_refuse_to_start(tmp_path: Path) -> None:
    callers = make_callers({"alice": ("team-a",)})
    tokens = write_tokens(tmp_path / "tokens", callers.values())
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    unknown_role = tmp_path / "unknown-role.toml"
    unknown_role.write_text('[namespaces.team-a]\nsuperuser = ["alice"]\n')
    raw = new_token()
    malformed = tmp_path / "malformed-tokens"
    malformed.write_text(callers["alice"].line + f"\n{raw} bob\n")
    base = ["serve", "--port", "0", "--database", sqlite_url(tmp_path)]
    loopback = [*base, "--host", "127.0.0.1"]
    cases = {
        "a policy without any way to authenticate": (
            [*loopback, "--authz-policy", str(policy)],
            "--authz-policy needs a way to authenticate",
        ),
        "credentials in plaintext on all interfaces": (
            [*base, "--host", "0.0.0.0", "--auth-tokens", str(tokens), "--authz-policy", str(policy)],
            "refusing to accept credentials in plaintext",
        ),
        "a policy with an unknown role": (
            [*loopback, "--auth-tokens", str(tokens), "--authz-policy", str(unknown_role)],
            "unknown role 'superuser'",
        ),
        "a tokens file with a malformed line": (
            [*loopback, "--auth-tokens", str(malformed), "--authz-policy", str(policy)],
            "line 2",
        ),
    }
    # Started together (each is a short-lived process) to keep the wall time down.
    processes = {name: spawn(args, tmp_path) for name, (args, _) in cases.items()}
    for name, process in processes.items():
        try:
            stdout, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"{name}: the server started instead of refusing")
        stderr = process.stderr_path.read_text()  # type: ignore[attr-defined]
        assert process.returncode == 2, (name, process.returncode, stderr)
        assert "listening" not in stdout, name
        assert cases[name][1] in stderr, (name, stderr)
        assert raw not in stderr and callers["alice"].token not in stderr, name
    assert not (tmp_path / "auth.db").exists(), "a refused configuration must not touch the database"


def test_listening_on_all_interfaces_without_authentication_warns_once(tmp_path: Path) -> None:
    callers = make_callers({"root": ()})
    tokens = write_tokens(tmp_path / "tokens", callers.values())
    policy = tmp_path / "policy.toml"
    policy.write_text('cluster_admins = ["root"]\n')
    public = ["--host", "0.0.0.0", "--port", "0"]
    off_args = [*public, "--database", sqlite_url(tmp_path, "off.db")]
    # With authentication on, --insecure-i-know (e.g. behind a TLS proxy) is the explicit override.
    on_args = [*public, "--database", sqlite_url(tmp_path, "on.db"), "--insecure-i-know"]
    on_args += ["--auth-tokens", str(tokens), "--authz-policy", str(policy)]
    with ThreadPoolExecutor(2) as pool:
        off, on = pool.map(lambda args: start(args, tmp_path), [off_args, on_args])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{off.port}") as channel:
            assert health_status(channel) == "SERVING"
        with grpc.insecure_channel(f"127.0.0.1:{on.port}") as channel:
            stub = svc_grpc.MetadataStoreServiceStub(channel)
            stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), metadata=bearer(callers["root"].token), timeout=10)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetArtifactTypes(svc.GetArtifactTypesRequest(), timeout=10)
            assert refused.value.code() is UNAUTHENTICATED
    finally:
        # One SIGTERM each (stop() sends it): a second one during a graceful shutdown could
        # land after the interpreter stopped running signal handlers.
        assert off.stop() == 0 and on.stop() == 0
    warnings = [line for line in off.stderr().splitlines() if "authentication is off" in line]
    assert len(warnings) == 1, off.stderr()
    assert "WARNING" in warnings[0]
    assert "authentication is off" not in on.stderr()
    assert callers["root"].token not in on.stderr()

"""AccessControl.admit remembers admitted calls per loaded policy: the remembered answer
must be exactly what a fresh decision gives, refusals must be decided every time, and a
reload must take effect on the next call."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineagedb import errors
from lineagedb.security import access_control
from lineagedb.security.access_control import AccessControl
from lineagedb.security.settings import SecuritySettings
from lineagedb.security.static_tokens import new_token, tokens_file_line
from lineagedb.store.audit_log import CURRENT_CALL, CallContext

POLICY = """
cluster_admins = ["root"]
[namespaces.team-a]
editor = ["writer", "team-only"]
[namespaces.default]
viewer = ["writer"]
[defaults]
writer = "team-a"
"team-only" = "team-a"
"""
NARROWED = """
[namespaces.team-a]
viewer = ["writer"]
"""

NO_PEER: dict[str, list[bytes]] = {}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[AccessControl, dict[str, str], Path]:
    tokens = {principal: new_token() for principal in ("root", "writer", "team-only")}
    (tmp_path / "tokens").write_text("\n".join(tokens_file_line(t, p) for p, t in tokens.items()) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = SecuritySettings(tokens_file=str(tmp_path / "tokens"), authz_policy=str(policy))
    return AccessControl(settings), tokens, policy


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_a_remembered_admission_is_the_fresh_decision(setup: tuple[AccessControl, dict[str, str], Path]) -> None:
    access, tokens, _ = setup
    first = access.admit("read", bearer(tokens["writer"]), None, NO_PEER)
    again = access.admit("read", bearer(tokens["writer"]), None, NO_PEER)
    assert again is first  # one immutable Tenancy for every such call
    assert first is not None
    assert first.namespace == "team-a"
    assert first.readable == frozenset({"team-a", "default"})
    assert first.writable == frozenset({"team-a"})
    assert first.page_token_key is not None
    # Another principal, namespace or permission is decided on its own.
    team = access.admit("read", bearer(tokens["team-only"]), None, NO_PEER)
    assert team is not None and team.readable == frozenset({"team-a"})
    assert team.page_token_key != first.page_token_key
    in_default = access.admit("read", bearer(tokens["writer"]), "default", NO_PEER)
    assert in_default is not None and in_default.namespace == "default"
    written = access.admit("write", bearer(tokens["writer"]), None, NO_PEER)
    assert written is not None and written.namespace == "team-a"


def test_refusals_are_decided_on_every_call(setup: tuple[AccessControl, dict[str, str], Path]) -> None:
    access, tokens, _ = setup
    for _ in range(3):
        with pytest.raises(errors.PermissionDeniedError, match="may not write in namespace 'default'"):
            access.admit("write", bearer(tokens["writer"]), "default", NO_PEER)
        with pytest.raises(errors.PermissionDeniedError, match="may not read namespace 'default'"):
            access.admit("read", bearer(tokens["team-only"]), "default", NO_PEER)
    # An admitted call with the same token still needs a valid token each time.
    access.admit("read", bearer(tokens["writer"]), None, NO_PEER)
    with pytest.raises(errors.UnauthenticatedError):
        access.admit("read", bearer(tokens["writer"] + "x"), None, NO_PEER)
    # ...and the HTTP Basic user name must still be the token's principal.
    with pytest.raises(errors.UnauthenticatedError):
        access.admit("read", bearer(tokens["writer"]), None, NO_PEER, claimed_principal="root")


def test_the_audit_record_gets_principal_and_namespace_on_every_call(
    setup: tuple[AccessControl, dict[str, str], Path],
) -> None:
    access, tokens, _ = setup
    for _ in range(2):  # the first call decides, the second is remembered
        call = CallContext(method="m", peer="p", request_digest="")
        token = CURRENT_CALL.set(call)
        try:
            access.admit("read", bearer(tokens["writer"]), None, NO_PEER)
        finally:
            CURRENT_CALL.reset(token)
        assert (call.principal, call.namespace) == ("writer", "team-a")
    # A refused call's record names the namespace it tried to act in.
    call = CallContext(method="m", peer="p", request_digest="")
    token = CURRENT_CALL.set(call)
    try:
        with pytest.raises(errors.PermissionDeniedError):
            access.admit("write", bearer(tokens["writer"]), "default", NO_PEER)
    finally:
        CURRENT_CALL.reset(token)
    assert (call.principal, call.namespace) == ("writer", "default")


def test_a_reload_takes_effect_on_the_next_call(setup: tuple[AccessControl, dict[str, str], Path]) -> None:
    access, tokens, policy = setup
    assert access.admit("write", bearer(tokens["writer"]), None, NO_PEER) is not None
    policy.write_text(NARROWED)
    access.reload()
    with pytest.raises(errors.PermissionDeniedError):
        access.admit("write", bearer(tokens["writer"]), "team-a", NO_PEER)
    narrowed = access.admit("read", bearer(tokens["writer"]), None, NO_PEER)
    assert narrowed is not None and narrowed.readable == frozenset({"team-a"})


def test_the_memory_is_bounded(
    setup: tuple[AccessControl, dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    access, tokens, _ = setup
    monkeypatch.setattr(access_control, "ADMITTED_CACHE_SIZE", 2)
    for namespace in ("team-a", "default", "team-a", "default"):
        access.admit("read", bearer(tokens["writer"]), namespace, NO_PEER)
        access.admit("read", bearer(tokens["root"]), namespace, NO_PEER)
    state = access._state
    assert state is not None
    assert len(state.admitted) <= 2


def test_the_peer_auth_context_is_read_only_when_used() -> None:
    from lineagedb.api.auth import _PeerAuthContext

    class Context:
        reads = 0

        def auth_context(self) -> dict[str, list[bytes]]:
            Context.reads += 1
            return {"x509_pem_cert": [b"pem"]}

    lazy = _PeerAuthContext(Context())
    assert Context.reads == 0
    assert lazy.get("x509_pem_cert") == [b"pem"]
    assert lazy.get("missing") is None
    assert dict(lazy) == {"x509_pem_cert": [b"pem"]}
    assert Context.reads == 1


def test_a_token_with_any_whitespace_is_malformed() -> None:
    """bearer_token refuses a token holding any character re's \\s matches (it used that
    regex): the split-based check agrees with it on every code point."""
    import re
    import sys

    from lineagedb.security.authn import bearer_token
    from lineagedb.security.identity import AuthenticationError

    whitespace = re.compile(r"\s")
    for code in range(sys.maxunicode + 1):
        token = f"ldb_a{chr(code)}b"
        if whitespace.search(token):
            with pytest.raises(AuthenticationError):
                bearer_token(f"Bearer {token}")
        else:
            assert bearer_token(f"Bearer {token}") == token
    for token in (" ldb_x", "ldb_x ", "ldb_\u00a0x", "ldb_\u2028x", "\u3000"):
        with pytest.raises(AuthenticationError):
            bearer_token(f"Bearer {token}")


def test_identity_hash_and_equality_are_by_value() -> None:
    from lineagedb.security.identity import Identity

    one = Identity(principal="writer", groups=frozenset({"a", "b"}))
    same = Identity(principal="writer", groups=frozenset({"b", "a"}))
    assert one == same and hash(one) == hash(same)
    assert {one: 1}[same] == 1
    for other in (
        Identity(principal="writer"),
        Identity(principal="writer", groups=frozenset({"a", "b"}), method="jwt"),
        Identity(principal="writer", groups=frozenset({"a", "b"}), default_namespace="team-a"),
    ):
        assert other != one
        assert {one: 1}.get(other) is None

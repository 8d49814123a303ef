"""With authentication off, the interceptor skips reading credentials for a call whose metadata
names nothing it reads; its decision must be the one `AccessControl.admit` takes for every
metadata the call may carry (a namespace to organize by, a malformed one, several
authorization entries, an unlisted method)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from lineagedb import errors
from lineagedb.api.auth import AuthInterceptor, _metadata
from lineagedb.security.access_control import AccessControl
from lineagedb.security.settings import SecuritySettings

READ = "/ml_metadata.MetadataStoreService/GetArtifacts"
UNLISTED = "/ml_metadata.MetadataStoreService/NotAMethod"


class _Aborted(Exception):
    pass


class FakeContext:
    """The parts of a grpc.ServicerContext the interceptor reads."""

    def __init__(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        self.metadata = metadata
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def invocation_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self.metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise _Aborted(details)


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("user-agent", "grpc-python"),),
        (("x-lineagedb-namespace", "team-a"),),
        (("x-lineagedb-namespace", "default"),),
        (("x-lineagedb-namespace", "Not A Namespace"),),
        (("authorization", "Bearer whatever"),),
        (("authorization", "Bearer a"), ("authorization", "Bearer b")),
        (("x-lineagedb-basic-user", "alice"),),
    ],
)
def test_auth_off_admits_as_access_control_decides(metadata: tuple[tuple[str, Any], ...]) -> None:
    access = AccessControl(SecuritySettings())
    assert not access.enabled
    interceptor = AuthInterceptor(access)
    context = FakeContext(metadata)
    try:
        got: Any = interceptor._admit(READ, context)
    except _Aborted:
        got = context.aborted
    try:
        # The full path: every entry read, then AccessControl decides.
        authorization, namespace, user = _metadata(FakeContext(metadata))
        expected: Any = access.admit("read", authorization, namespace, {}, user)
    except errors.LineageError as error:
        assert isinstance(got, tuple) and got[1] == error.message
        return
    assert got == expected


def test_auth_off_still_denies_a_method_missing_from_the_table() -> None:
    context = FakeContext(())
    with pytest.raises(_Aborted):
        AuthInterceptor(AccessControl(SecuritySettings()))._admit(UNLISTED, context)
    assert context.aborted is not None and context.aborted[0] is grpc.StatusCode.PERMISSION_DENIED

"""The explorer behind authentication: the token and namespace boxes are kept in the tab's
sessionStorage and sent with every call, and the page shows only what the caller may read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.auth.test_grpc_auth import POLICY, PRINCIPALS
from tests.explorer.conftest import Watched
from tests.http.conftest import MLMD, wait_http_port
from tests.http.test_auth_audit import post

UNAUTHORIZED_LOG = "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
FORBIDDEN_LOG = "Failed to load resource: the server responded with a status of 403 (Forbidden)"


def _write(port: int, token: str, namespace: str | None, type_id: str, uri: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    if namespace:
        headers["X-LineageDB-Namespace"] = namespace
    answer = post(port, f"{MLMD}/PutArtifacts", {"artifacts": [{"type_id": type_id, "uri": uri}]}, headers)
    assert answer.status == 200, answer.body
    return str(answer.body["artifact_ids"][0])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, int, dict[str, str]]]:
    directory: Path = tmp_path_factory.mktemp("explorer-auth")
    auth = start_auth_server(
        directory, make_callers(PRINCIPALS), POLICY, ("team-a", "team-b", "shared"), ["--http-port", "0"]
    )
    try:
        port = wait_http_port(auth.server)
        root = {"Authorization": f"Bearer {auth.token('root')}"}
        answer = post(port, f"{MLMD}/PutArtifactType", {"artifact_type": {"name": "Data"}}, root)
        assert answer.status == 200, answer.body
        type_id = answer.body["type_id"]
        ids = {
            "a": _write(port, auth.token("alice"), None, type_id, "file:///team-a"),
            "b": _write(port, auth.token("bob"), None, type_id, "file:///team-b"),
        }
        yield auth, port, ids
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def _uris(page: Any) -> list[str]:
    page.wait_for_selector("#list table, #filter-error")
    return list(page.locator("#list tbody tr td:nth-child(4)").all_inner_texts())


def _use(page: Any, token: str, namespace: str = "") -> None:
    page.fill("#token", token)
    page.fill("#namespace", namespace)
    page.click("#session button")


def test_token_and_namespace_boxes(secured: tuple[AuthServer, int, dict[str, str]], watched: Watched) -> None:
    auth, port, ids = secured
    page = watched.page
    sent: list[tuple[str, str | None, str | None]] = []
    page.on(
        "request",
        lambda r: (
            sent.append(
                (r.url.rsplit("/", 1)[1], r.headers.get("authorization"), r.headers.get("x-lineagedb-namespace"))
            )
            if "/api/v1/" in r.url
            else None
        ),
    )
    page.goto(f"http://127.0.0.1:{port}/#/list/artifacts")
    error = page.wait_for_selector("#filter-error")
    assert error.inner_text().startswith("UNAUTHENTICATED: ")

    # alice reads team-a (her default namespace), not team-b.
    start = len(sent)
    _use(page, auth.token("alice"))
    page.wait_for_selector("#list table")
    assert _uris(page) == ["file:///team-a"]
    assert "GetArtifacts" in [method for method, _, _ in sent[start:]]
    assert {(token, namespace) for _, token, namespace in sent[start:]} == {(f"Bearer {auth.token('alice')}", None)}
    assert page.evaluate("() => sessionStorage.getItem('lineagedb.token')") == auth.token("alice")

    # bob's token in team-b; then in team-a, where he has no role.
    start = len(sent)
    _use(page, auth.token("bob"), "team-b")
    page.wait_for_function(
        "() => document.querySelector('#list tbody td:nth-child(4)')?.textContent === 'file:///team-b'"
    )
    assert {(token, namespace) for _, token, namespace in sent[start:]} == {(f"Bearer {auth.token('bob')}", "team-b")}
    page.goto(f"http://127.0.0.1:{port}/#/artifact/{ids['a']}")
    # alice's artifact is not bob's to read: the page says it does not exist.
    assert page.wait_for_selector("p.error").inner_text() == f"NOT_FOUND: no artifact with id {ids['a']}"
    assert "file:///team-a" not in page.inner_text("main")
    _use(page, auth.token("bob"), "team-a")
    page.wait_for_selector("p.error:text('PERMISSION_DENIED')")

    # The boxes survive a reload of the tab (sessionStorage), and are sent again.
    start = len(sent)
    page.reload()
    page.wait_for_selector("p.error")
    assert (page.input_value("#token"), page.input_value("#namespace")) == (auth.token("bob"), "team-a")
    assert sent[start:] and {(token, namespace) for _, token, namespace in sent[start:]} == {
        (f"Bearer {auth.token('bob')}", "team-a")
    }
    assert set(watched.console) <= {UNAUTHORIZED_LOG, FORBIDDEN_LOG} and watched.page_errors == []

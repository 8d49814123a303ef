"""MLflow's REST API under authentication: bearer tokens (MLFLOW_TRACKING_TOKEN) and HTTP Basic
(MLFLOW_TRACKING_USERNAME/PASSWORD, a token as the password, the user name its principal) reach
the same principals, roles and namespaces as every other call. One server on SQLite, ~5 s.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.conftest import AuthServer, make_callers, start_auth_server
from tests.auth.test_grpc_auth import POLICY, PRINCIPALS
from tests.http.conftest import wait_http_port

TEAM_A = {"X-LineageDB-Namespace": "team-a"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthServer, str]]:
    directory = tmp_path_factory.mktemp("mlflow-auth")
    auth = start_auth_server(
        directory, make_callers(PRINCIPALS), POLICY, ("team-a", "team-b", "shared"), ["--http-port", "0"]
    )
    try:
        yield auth, f"http://127.0.0.1:{wait_http_port(auth.server)}/api/2.0/mlflow"
        auth.assert_log_has_no_secret()
    finally:
        auth.close()


def _bearer(auth: AuthServer, principal: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.token(principal)}", **TEAM_A}


def _code(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, answer.json().get("error_code", "OK")


def test_tokens_and_basic_credentials_reach_the_same_principals(secured: tuple[AuthServer, str]) -> None:
    auth, base = secured
    create = f"{base}/experiments/create"
    assert _code(httpx.post(create, json={"name": "x"}, headers=TEAM_A, timeout=30)) == (401, "UNAUTHENTICATED")
    made = httpx.post(create, json={"name": "vision"}, headers=_bearer(auth, "alice"), timeout=30)
    assert made.status_code == 200, made.text
    experiment_id = made.json()["experiment_id"]
    # carol views team-a: she reads the experiment and may not write there.
    get = f"{base}/experiments/get"
    seen = httpx.get(get, params={"experiment_id": experiment_id}, headers=_bearer(auth, "carol"), timeout=30)
    assert seen.status_code == 200 and seen.json()["experiment"]["name"] == "vision"
    refused = httpx.post(create, json={"name": "carol's"}, headers=_bearer(auth, "carol"), timeout=30)
    assert _code(refused) == (403, "PERMISSION_DENIED")
    # bob's namespaces do not hold it: it does not exist for him.
    bob = {"Authorization": f"Bearer {auth.token('bob')}"}
    hidden = httpx.get(get, params={"experiment_id": experiment_id}, headers=bob, timeout=30)
    assert _code(hidden) == (404, "RESOURCE_DOES_NOT_EXIST")
    asking_team_a = httpx.get(get, params={"experiment_id": experiment_id}, headers=_bearer(auth, "bob"), timeout=30)
    assert _code(asking_team_a) == (403, "PERMISSION_DENIED")
    # HTTP Basic: the password is the token, the user name must be its principal.
    run = httpx.post(
        f"{base}/runs/create",
        json={"experiment_id": experiment_id},
        auth=("alice", auth.token("alice")),
        headers=TEAM_A,
        timeout=30,
    )
    assert run.status_code == 200, run.text
    someone_else = httpx.post(
        f"{base}/runs/create",
        json={"experiment_id": experiment_id},
        auth=("root", auth.token("alice")),
        headers=TEAM_A,
        timeout=30,
    )
    assert _code(someone_else) == (401, "UNAUTHENTICATED")
    wrong = httpx.get(get, params={"experiment_id": experiment_id}, auth=("carol", "not-a-token"), timeout=30)
    assert _code(wrong) == (401, "UNAUTHENTICATED")

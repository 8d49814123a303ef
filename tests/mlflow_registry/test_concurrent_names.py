"""Registered-model names under concurrent writers, on every backend, through MLflow's REST API of
a live server: first writers racing to register the registry's types, and renames racing creates of
the same name. Every loser gets MLflow's RESOURCE_ALREADY_EXISTS (never INTERNAL_ERROR); a lost
transaction race (ABORTED) is retried by the server. ~3-6 s per backend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.http.conftest import start_http

MLFLOW = "/api/2.0/mlflow/registered-models"
PAIRS = 6


def _post(base: str, path: str, body: dict[str, str], barrier: threading.Barrier) -> httpx.Response:
    barrier.wait(timeout=30)
    return httpx.post(f"{base}{MLFLOW}/{path}", json=body, timeout=60)


def test_first_creates_racing_for_the_types_all_succeed(database_url: str, tmp_path: Path) -> None:
    server = start_http(database_url, tmp_path, "--artifact-root", str(tmp_path / "artifacts"))
    try:
        barrier = threading.Barrier(PAIRS)
        with ThreadPoolExecutor(PAIRS) as pool:
            answers = list(pool.map(lambda i: _post(server.base, "create", {"name": f"m{i}"}, barrier), range(PAIRS)))
        assert [a.status_code for a in answers] == [200] * PAIRS, [a.text for a in answers]
        found = httpx.get(f"{server.base}{MLFLOW}/search", params={"max_results": 100}, timeout=30).json()
        assert sorted(m["name"] for m in found["registered_models"]) == [f"m{i}" for i in range(PAIRS)]
    finally:
        assert server.stop() == 0


def test_a_rename_racing_a_create_of_its_new_name_loses_or_wins_cleanly(database_url: str, tmp_path: Path) -> None:
    server = start_http(database_url, tmp_path, "--artifact-root", str(tmp_path / "artifacts"))
    try:
        for index in range(PAIRS):
            created = httpx.post(f"{server.base}{MLFLOW}/create", json={"name": f"old{index}"}, timeout=30)
            assert created.status_code == 200, created.text
        barrier = threading.Barrier(2 * PAIRS)
        calls = [("rename", {"name": f"old{i}", "new_name": f"new{i}"}) for i in range(PAIRS)]
        calls += [("create", {"name": f"new{i}"}) for i in range(PAIRS)]
        with ThreadPoolExecutor(len(calls)) as pool:
            answers = list(pool.map(lambda call: _post(server.base, call[0], call[1], barrier), calls))
        renames, creates = answers[:PAIRS], answers[PAIRS:]
        for index, (rename, create) in enumerate(zip(renames, creates, strict=True)):
            codes = sorted([rename.status_code, create.status_code])
            assert codes == [200, 400], (index, rename.text, create.text)
            loser = rename if rename.status_code == 400 else create
            assert loser.json()["error_code"] == "RESOURCE_ALREADY_EXISTS", loser.text
            assert loser.json()["message"] == f"Registered Model (name=new{index}) already exists."
        found = httpx.get(f"{server.base}{MLFLOW}/search", params={"max_results": 100}, timeout=30).json()
        names = sorted(m["name"] for m in found["registered_models"])
        # Each pair: the new name once, and the old name unless the rename won.
        expected = [f"new{i}" for i in range(PAIRS)]
        expected += [f"old{i}" for i in range(PAIRS) if renames[i].status_code == 400]
        assert names == sorted(expected)
    finally:
        assert server.stop() == 0

"""Concurrent CreateModelVersion calls on one registered model get distinct, consecutive numbers on
every backend (a live server, eight clients at once over the JSON API). ~3 s per backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.http.conftest import start_http

REGISTRY = "/api/v1/lineagedb.v1.MlflowRegistryService"
WRITERS = 8


def test_concurrent_versions_are_numbered_once_each(database_url: str, tmp_path: Path) -> None:
    server = start_http(database_url, tmp_path, "--artifact-root", str(tmp_path / "artifacts"))
    try:
        created = httpx.post(f"{server.base}{REGISTRY}/CreateRegisteredModel", json={"name": "m"}, timeout=30)
        assert created.status_code == 200, created.text

        def create(index: int) -> httpx.Response:
            body = {"name": "m", "source": f"s3://bucket/{index}"}
            return httpx.post(f"{server.base}{REGISTRY}/CreateModelVersion", json=body, timeout=60)

        with ThreadPoolExecutor(WRITERS) as pool:
            answers = list(pool.map(create, range(WRITERS)))
        assert [a.status_code for a in answers] == [200] * WRITERS, [a.text for a in answers if a.status_code != 200]
        numbers = sorted(int(a.json()["model_version"]["version"]) for a in answers)
        assert numbers == list(range(1, WRITERS + 1))
        found = httpx.post(f"{server.base}{REGISTRY}/SearchModelVersions", json={"filter": "name = 'm'"}, timeout=30)
        sources = {v["version"]: v["source"] for v in found.json()["model_versions"]}
        assert len(sources) == WRITERS and len(set(sources.values())) == WRITERS
    finally:
        assert server.stop() == 0

"""First writers racing: MLflow clients that start runs at the same moment on a fresh database
(the Default experiment, the MLflow types and a shared dataset are made once, by whichever
writer wins; the others are retried by the server, never refused). ~4 s per backend.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.http.conftest import start_http

WRITERS = 6


def test_concurrent_first_runs_all_succeed(database_url: str, tmp_path: Path) -> None:
    server = start_http(database_url, tmp_path)
    try:
        base = f"{server.base}/api/2.0/mlflow"

        def start_run(index: int) -> tuple[int, str]:
            with httpx.Client(timeout=60) as client:
                made = client.post(f"{base}/runs/create", json={"experiment_id": "0", "run_name": f"r{index}"})
                if made.status_code != 200:
                    return made.status_code, made.text
                run_id = made.json()["run"]["info"]["run_id"]
                dataset = {"name": "shared", "digest": "d1", "source_type": "local", "source": "{}"}
                logged = client.post(
                    f"{base}/runs/log-inputs", json={"run_id": run_id, "datasets": [{"dataset": dataset}]}
                )
                return logged.status_code, logged.text

        with ThreadPoolExecutor(WRITERS) as pool:
            answers = list(pool.map(start_run, range(WRITERS)))
        assert all(status == 200 for status, _ in answers), answers
        runs = httpx.post(f"{base}/runs/search", json={"experiment_ids": ["0"]}, timeout=60).json()["runs"]
        assert len(runs) == WRITERS
        digests = {i["dataset"]["digest"] for r in runs for i in r["inputs"]["dataset_inputs"]}
        assert digests == {"d1"}
        experiments = httpx.get(f"{base}/experiments/search", params={"max_results": 10}, timeout=60).json()
        assert [e["name"] for e in experiments["experiments"]] == ["Default"]
    finally:
        server.stop()

"""The MLflow workload of bench/mlflow.py, run with the pinned client (.venv-mlflow/bin/python).

    python -P mlflow_driver.py <tracking uri> --runs N --reps R   (-P: bench/mlflow.py must not shadow mlflow)

Loads N runs into a fresh experiment over REST (8 client threads; each run: create, one
log_batch of 2 params, 2 metrics and 1 tag, finish), then times, alternating nothing else:
log_batch of 1,000 metrics into one run, and search_runs over the N runs (a filtered and
ordered page of 100, and MLflow's default page of 1,000). Prints one JSON line of medians (ms).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.uri)
    client = MlflowClient()
    experiment_id = client.create_experiment(f"bench-{random.randrange(10**9)}")
    rng = random.Random(7)
    values = [(rng.random(), rng.choice(["adam", "sgd", "rmsprop"]), rng.random()) for _ in range(args.runs)]

    def load(index: int) -> None:
        run = client.create_run(experiment_id, run_name=f"run-{index:05d}")
        m0, optimizer, m1 = values[index]
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("m0", m0, 1, 0), Metric("m1", m1, 1, 0)],
            params=[Param("optimizer", optimizer), Param("index", str(index))],
            tags=[RunTag("team", "a" if index % 2 else "b")],
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(load, range(args.runs)))
    load_s = time.perf_counter() - started

    target = client.create_run(experiment_id, run_name="batch-target").info.run_id
    batch_ms = []
    for rep in range(args.reps):
        metrics = [Metric(f"k{i % 50}", float(i), 1_700_000_000_000 + rep, rep * 1000 + i) for i in range(1000)]
        started = time.perf_counter()
        client.log_batch(target, metrics=metrics)
        batch_ms.append((time.perf_counter() - started) * 1000)

    def timed(call: object) -> float:
        started = time.perf_counter()
        call()  # type: ignore[operator]
        return (time.perf_counter() - started) * 1000

    filtered_ms, default_ms = [], []
    for _ in range(args.reps):
        filtered_ms.append(
            timed(
                lambda: client.search_runs(
                    [experiment_id],
                    "metrics.m0 > 0.5 and params.optimizer = 'adam' and tags.team = 'a'",
                    order_by=["metrics.m1 DESC"],
                    max_results=100,
                )
            )
        )
        default_ms.append(timed(lambda: client.search_runs([experiment_id], "", max_results=1000)))
    print(
        json.dumps(
            {
                "runs": args.runs,
                "load_s": round(load_s, 1),
                "log_batch_1000_ms": statistics.median(batch_ms),
                "search_filtered_100_ms": statistics.median(filtered_ms),
                "search_default_1000_ms": statistics.median(default_ms),
            }
        )
    )


if __name__ == "__main__":
    main()

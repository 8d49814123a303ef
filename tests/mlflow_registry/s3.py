"""A real S3-compatible server for the artifact store's tests: moto's S3 server (`moto_server`,
from the dev dependencies) as a separate process on a free loopback port, and the environment a
LineageDB server needs to use it (endpoint and credentials the way MLflow takes them).

moto accepts any credentials unless started with INITIAL_NO_AUTH_ACTION_COUNT=0, when it refuses
keys it never issued (used to test refused credentials). ~1 s to start.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.conftest import free_port

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
START_TIMEOUT_S = 30.0


@dataclass
class S3Server:
    endpoint: str
    access_key: str = "AKIA" + secrets.token_hex(8).upper()
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(30))

    def env(self) -> dict[str, str]:
        """What a LineageDB server is started with (MLFLOW_S3_ENDPOINT_URL, as for MLflow's server)."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@contextmanager
def moto_server(directory: Path, refuse_unknown_keys: bool = False) -> Iterator[S3Server]:
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: install the dev dependencies (make install)")
    port = free_port()
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if refuse_unknown_keys else {}
    log = (directory / f"moto-{port}.log").open("w")
    process = subprocess.Popen(
        [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**_plain_environment(), **env},
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=2)
                break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (directory / f"moto-{port}.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _plain_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}

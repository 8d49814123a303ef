"""The web explorer in headless Chromium (Debian's chromium, driven by Playwright).

One `lineagedb serve --http-port 0` process on SQLite for the module, holding the two TFX
runs, a node set whose names, types, properties and contexts are markup, and a wide step
(one execution with 999 outputs) for the 1,000-node view; all written over the JSON API.

Chromium and Playwright are required in CI (CI=true): there a missing one fails these
tests. Elsewhere they are skipped. Playwright never downloads a browser here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lineagedb.proto.ml_metadata.proto import metadata_store_pb2 as mlmd
from tests.answers.tfx_pipeline import write_two_runs
from tests.http.conftest import HttpServer, JsonCaller, PipelineClient, start_http

HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert(2)</script>"
WIDE = 999


@dataclass
class Explorer:
    server: HttpServer
    runs: dict[str, dict[str, int]]
    hostile: dict[str, int]
    wide: dict[str, Any]

    @property
    def base(self) -> str:
        return self.server.base


def _hostile(client: PipelineClient) -> dict[str, int]:
    data_type = client.put_artifact_type(mlmd.ArtifactType(name=f"Data{HOSTILE}"))
    step_type = client.put_execution_type(mlmd.ExecutionType(name=f"Train{SCRIPT}"))
    context_type = client.put_context_type(mlmd.ContextType(name="experiment"))
    data = mlmd.Artifact(type_id=data_type, uri=f"s3://b/{HOSTILE}", name=HOSTILE, state=mlmd.Artifact.LIVE)
    data.custom_properties[HOSTILE].string_value = SCRIPT
    data.custom_properties["note"].string_value = '"><svg onload=alert(3)>'
    step = mlmd.Execution(type_id=step_type, name=SCRIPT, last_known_state=mlmd.Execution.FAILED)
    step.custom_properties["learning_rate"].string_value = "<b>0.1</b>"
    output = mlmd.Artifact(
        type_id=data_type, uri="gs://m/1", name='out" onmouseover="alert(4)', state=mlmd.Artifact.LIVE
    )
    input_event = mlmd.Event(type=mlmd.Event.INPUT)
    input_event.path.steps.add().key = HOSTILE
    output_event = mlmd.Event(type=mlmd.Event.OUTPUT)
    output_event.path.steps.add().key = "out"
    context = mlmd.Context(type_id=context_type, name=f"exp{HOSTILE}")
    execution_id, artifact_ids, context_ids = client.put_execution(
        step, [(data, input_event), (output, output_event)], [context]
    )
    return {"data": artifact_ids[0], "output": artifact_ids[1], "step": execution_id, "context": context_ids[0]}


def _wide(client: PipelineClient) -> dict[str, Any]:
    shard_type = client.put_artifact_type(mlmd.ArtifactType(name="Shard"))
    fan_type = client.put_execution_type(mlmd.ExecutionType(name="Fanout"))
    step = mlmd.Execution(type_id=fan_type, name="fanout", last_known_state=mlmd.Execution.COMPLETE)
    pairs = []
    for index in range(WIDE):
        event = mlmd.Event(type=mlmd.Event.OUTPUT)
        event.path.steps.add().key = "shards"
        event.path.steps.add().index = index
        pairs.append((mlmd.Artifact(type_id=shard_type, uri=f"file:///shards/{index}", state=2), event))
    execution_id, artifact_ids, _ = client.put_execution(step, pairs, [])
    return {"execution": execution_id, "shards": artifact_ids}


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Explorer]:
    directory = tmp_path_factory.mktemp("explorer")
    server = start_http(f"sqlite:///{directory}/explorer.db", directory)
    try:
        with httpx.Client(timeout=60) as http:
            client = PipelineClient(JsonCaller(http, server.base))
            runs = write_two_runs(mlmd, client)
            hostile = _hostile(client)
            wide = _wide(client)
        yield Explorer(server, runs, hostile, wide)
    finally:
        server.stop()


class Watched:
    """A page recording console errors and warnings, page errors, dialogs and every request."""

    def __init__(self, browser: Any, downloads: Path | None = None) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.console.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", dialog)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    page = Watched(browser)
    yield page
    page.close()

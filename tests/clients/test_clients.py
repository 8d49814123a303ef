"""The example clients in clients/ (Go, Node, C++) against a live LineageDB.

One server on a fresh SQLite database serves the whole module; each client is built
(if it has a build step) and run as its own test case, and must exit 0 and report
that all its checks passed. The toolchains come from `bash clients/setup.sh`. A
missing toolchain skips the case locally with the reason, and fails it under CI
(CI set), where .ci/run installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.backends import IN_CI
from tests.conftest import LiveServer, start_server, stop_server

pytestmark = pytest.mark.clients

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
GOCODE = Path("/usr/share/gocode/src")


@dataclass(frozen=True)
class Client:
    name: str
    tools: tuple[str, ...]  # executables that must be on PATH
    files: tuple[Path, ...]  # files or directories that must exist
    build: tuple[str, ...] | None  # command run in CLIENTS, or None
    run: tuple[str, ...]  # command run in CLIENTS; the server address is appended
    pkg_config: tuple[str, ...] = ()  # pkg-config modules that must exist


CLIENT_LIST = [
    Client(
        name="go",
        tools=("go", "protoc", "protoc-gen-go", "protoc-gen-go-grpc"),
        files=(GOCODE / "google.golang.org/grpc", GOCODE / "google.golang.org/protobuf"),
        build=("bash", "go/build.sh"),
        run=("go/build/bin/mlmd-go-client",),
    ),
    Client(
        name="node",
        tools=("node",),
        files=(CLIENTS / "node/node_modules/@grpc/grpc-js", CLIENTS / "node/node_modules/@grpc/proto-loader"),
        build=None,
        run=("node", "node/client.js"),
    ),
    Client(
        name="cpp",
        tools=("make", "g++", "protoc", "grpc_cpp_plugin", "pkg-config"),
        files=(),
        build=("make", "-s", "-C", "cpp", f"-j{os.cpu_count() or 2}"),
        run=("cpp/build/mlmd-cpp-client",),
        pkg_config=("grpc++", "protobuf"),
    ),
]


def missing_toolchain(client: Client) -> str | None:
    """None if everything the client needs is installed, else what is missing."""
    missing = [tool for tool in client.tools if shutil.which(tool) is None]
    missing += [str(path) for path in client.files if not path.exists()]
    if client.pkg_config and shutil.which("pkg-config") is not None:
        missing += [
            f"pkg-config {module}"
            for module in client.pkg_config
            if subprocess.run(["pkg-config", "--exists", module], check=False).returncode != 0
        ]
    if not missing:
        return None
    return f"{client.name} client toolchain missing ({', '.join(missing)}); run `bash clients/setup.sh`"


def run(command: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=CLIENTS, capture_output=True, text=True, timeout=timeout, check=False, env=dict(os.environ)
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("clients") / "lineagedb.db"
    live = start_server(f"sqlite:///{database}")
    yield live
    stop_server(live)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("client", CLIENT_LIST, ids=[c.name for c in CLIENT_LIST])
def test_client_story(client: Client, server: LiveServer) -> None:
    reason = missing_toolchain(client)
    if reason is not None:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)

    if client.build is not None:
        started = time.monotonic()
        built = run(client.build, timeout=1000)
        assert built.returncode == 0, (
            f"{client.name} build failed ({built.returncode}):\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
        )
        print(f"{client.name} build: {time.monotonic() - started:.1f} s")

    result = run((*client.run, server.address), timeout=120)
    print(result.stdout)
    assert result.returncode == 0, (
        f"{client.name} client exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    assert "checks passed" in result.stdout
    assert "FAIL" not in result.stdout

"""`pip install lineagedb` without the server extra, on Python 3.12 (.venv-client312: this
repository installed without extras, plus the ml_metadata drop-in): the client works against a
server with no SQLAlchemy or database driver installed; embedded mode and the `lineagedb`
command say which extra they need; the drop-in refuses to run beside the official wheel.

Cost: about 5 s (one server, four short interpreter runs).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.compat.conftest import _clean_env
from tests.conftest import start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
VENV312 = ROOT / ".venv-client312"

REMOTE_WORKLOAD = """
import importlib.util, sys
assert sys.version_info[:2] == (3, 12), sys.version
assert importlib.util.find_spec("sqlalchemy") is None, "the client-only install has SQLAlchemy"
from lineagedb.client import MetadataStore
from tests.pyclient.workload import exercise
with MetadataStore(sys.argv[1]) as store:
    exercise(store)
print("workload ok")
"""

EMBEDDED_WITHOUT_SERVER = """
from lineagedb.client import MetadataStore
try:
    MetadataStore("sqlite://")
except ImportError as error:
    print(error)
"""


@pytest.fixture(scope="module")
def python312() -> Path:
    python = VENV312 / "bin" / "python"
    if python.exists():
        return python
    reason = f"{python} is missing; run `make client-venvs`"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, env=env or _clean_env(), timeout=120, check=False
    )


def test_client_only_install_talks_to_a_server(python312: Path, tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'server.db'}")
    try:
        completed = _run([str(python312), "-c", REMOTE_WORKLOAD, server.address])
    finally:
        stop_server(server)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "workload ok" in completed.stdout


def test_embedded_mode_and_the_command_name_the_server_extra(python312: Path) -> None:
    completed = _run([str(python312), "-c", EMBEDDED_WITHOUT_SERVER])
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "pip install 'lineagedb[server]'" in completed.stdout
    command = _run([str(VENV312 / "bin" / "lineagedb"), "serve"])
    assert command.returncode == 2
    assert "pip install 'lineagedb[server]'" in command.stderr
    assert "Traceback" not in command.stderr


def test_drop_in_refuses_to_run_beside_the_official_wheel(python312: Path, tmp_path: Path) -> None:
    alone = _run([str(python312), "-c", "import ml_metadata; print(ml_metadata.__version__)"])
    assert alone.returncode == 0, alone.stderr[-3000:]
    # What pip leaves when the official wheel is installed too: its distribution metadata.
    info = tmp_path / "ml_metadata-1.17.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ml-metadata\nVersion: 1.17.1\n")
    env = {**_clean_env(), "PYTHONPATH": str(tmp_path)}
    both = _run([str(python312), "-c", "import ml_metadata"], env)
    assert both.returncode != 0
    assert "ImportError: both lineagedb-ml-metadata and Google's ml-metadata 1.17.1 are installed" in both.stderr

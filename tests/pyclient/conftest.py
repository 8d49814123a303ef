"""The official-client fixtures of tests/compat (its interpreter, and MLMD's reference runs)."""

from tests.compat.conftest import mlmd_python, scenario_runner

__all__ = ["mlmd_python", "scenario_runner"]

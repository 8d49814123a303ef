"""Placeholder until the manifest answer lands."""

from __future__ import annotations

from typing import Any

from lineagedb import errors


def answer(answers: Any, request: Any, deadline: float | None) -> Any:
    raise errors.UnimplementedError("manifest is not built yet")

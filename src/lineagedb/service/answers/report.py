"""Placeholder until the report answer lands."""

from __future__ import annotations

from typing import Any

from lineagedb import errors


def answer(answers: Any, request: Any, deadline: float | None) -> Any:
    raise errors.UnimplementedError("report is not built yet")

"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright.

Chromium and Playwright are required in CI (CI=true): there a missing one fails the test.
Elsewhere it is skipped. Playwright never downloads a browser here (`playwright install`
is not run): it drives the chromium binary lineagedb.ops.report_pdf finds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lineagedb.ops import report_pdf
from tests.backends import IN_CI


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One launched Chromium per test module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    binary = report_pdf.chromium_path()
    if binary is None:
        unavailable("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, headless=True)
        yield launched
        launched.close()

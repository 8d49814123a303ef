"""PDF of a lineage report: the report's HTML printed by headless Chromium through Playwright.

Chromium is the renderer the HTML report is tested in, so the PDF shows the same
page. Playwright is optional (`pip install 'lineagedb[pdf]'`) and imported only when
a PDF is asked for. It drives an installed Chromium (Debian's `chromium` package by
default; LINEAGEDB_CHROMIUM names another binary): never a browser Playwright would
download itself.

The page is printed with JavaScript off and every request refused: the report needs
neither, and a page built from untrusted metadata gets no chance to reach anything.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from typing import Any

from lineagedb import errors

CHROMIUM_ENV = "LINEAGEDB_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 60_000


def chromium_path() -> str | None:
    """The Chromium binary to use, or None when there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pdf_from_html(html: str, executable_path: str | None = None) -> bytes:
    """The PDF (A4 landscape, backgrounds printed) of a self-contained HTML page.

    Playwright's sync API refuses to run on a thread with a running event loop (an async
    caller, or another sync Playwright session), so the browser is driven from a thread
    of its own."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-pdf") as pool:
        return pool.submit(_print, html, executable_path).result()


def _print(html: str, executable_path: str | None) -> bytes:
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise errors.FailedPreconditionError(
            "a PDF report needs Playwright: pip install 'lineagedb[pdf]' (and Debian's chromium package)"
        ) from None
    binary = executable_path or chromium_path()
    if binary is None:
        raise errors.FailedPreconditionError(
            f"a PDF report needs Chromium: install Debian's chromium package or set {CHROMIUM_ENV}"
        )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=binary, headless=True)
            try:
                context = browser.new_context(java_script_enabled=False)
                page = context.new_page()
                page.route("**/*", _refuse)
                page.set_content(html, wait_until="load", timeout=TIMEOUT_MS)
                return bytes(page.pdf(format="A4", landscape=True, print_background=True))
            finally:
                browser.close()
    except PlaywrightError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errors.FailedPreconditionError(f"Chromium could not print the report: {first_line}") from None


def _refuse(route: Any) -> None:
    route.abort()

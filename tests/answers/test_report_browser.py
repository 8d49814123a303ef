"""The HTML report in headless Chromium (Debian's chromium, driven by Playwright): no console
error, no page error, not one request; the picture's node shapes; hostile names shown as
text; the page's style applied under its Content-Security-Policy; and the PDF.

Chromium and Playwright are required in CI (CI=true): there a missing one fails these
tests. Elsewhere they are skipped. Playwright never downloads a browser here
(`playwright install` is not run): it drives /usr/bin/chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lineagedb.ops import report_pdf
from lineagedb.proto.lineagedb.v1 import lineage_pb2 as pb
from lineagedb.service.answers.service import LineageAnswers
from tests.answers.conftest import LocalClient
from tests.answers.test_report import HOSTILE, hostile_model

# The page does not depend on the database: one backend is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


class Watched:
    """A page that records every console error, page error, failed request and request."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type in ("error", "warning") else None
        )
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def load(self, html: str) -> None:
        self.page.set_content(html, wait_until="load")
        # Anything lazy (fonts, images) would have been asked for by the time the network is idle.
        self.page.wait_for_load_state("networkidle")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    page = Watched(browser)
    yield page
    page.close()


def test_a_tfx_report_renders_without_errors_or_requests(
    answers: LineageAnswers, two_runs: dict[str, dict[str, int]], watched: Watched
) -> None:
    run = two_runs["run-1"]
    html = answers.report(pb.ReportRequest(artifact_id=run["model"], format="html")).content.decode()
    watched.load(html)
    assert (watched.console_errors, watched.page_errors, watched.failed, watched.requests) == ([], [], [], [])
    page = watched.page
    # 6 artifacts and 5 executions upstream, the Evaluator and its two outputs: 14 nodes.
    assert page.locator("svg g.node").count() == 14
    assert page.locator("svg g.node.artifact > ellipse").count() == 8
    assert page.locator("svg g.node.execution > rect").count() == 6
    assert page.locator(f"svg g#a{run['model']} > ellipse").get_attribute("stroke-width") == "3"
    assert page.locator("svg g.edge").count() == 13 + 4  # upstream events, the Evaluator's two inputs and two outputs
    # The style sheet applied: the CSP allows it by hash (a wrong hash would block it and log an error).
    assert page.eval_on_selector("h1", "e => getComputedStyle(e).fontSize") == "22px"
    assert page.locator("h2").all_inner_texts()[:5] == ["Subject", "Provenance", "Datasets", "Evaluations", "Steps"]
    assert page.locator("script, img, iframe, link, object, embed").count() == 0


def test_hostile_names_show_as_text(answers: LineageAnswers, client: LocalClient, watched: Watched) -> None:
    ids = hostile_model(client)
    html = answers.report(pb.ReportRequest(artifact_id=ids["model"], format="html")).content.decode()
    watched.load(html)
    assert (watched.console_errors, watched.page_errors, watched.failed, watched.requests) == ([], [], [], [])
    page = watched.page
    assert page.locator("script, img, b, iframe").count() == 0
    body = page.inner_text("body")
    assert HOSTILE in body and "</script><script>alert(2)</script>" in body and "<b>0.1</b>" in body
    assert page.locator("svg g.node").count() == 3
    # No element got an event handler attribute from a value.
    handlers = page.evaluate(
        "() => [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))"
        ".filter(n => n.startsWith('on'))"
    )
    assert handlers == []
    assert page.title() == "Compliance report: Model " + 'model" onmouseover="alert(3)' + f" (artifact {ids['model']})"


def test_pdf_of_the_report(answers: LineageAnswers, two_runs: dict[str, dict[str, int]], browser: Any) -> None:
    html = answers.report(pb.ReportRequest(artifact_id=two_runs["run-1"]["model"], format="html")).content.decode()
    pdf = report_pdf.pdf_from_html(html)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) > 10_000  # tables and a drawing, not an empty page

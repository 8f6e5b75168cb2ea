"""The release page's layout: the stage list never runs its words together (with or without the
stylesheet), and the page fits a 1280 px wide window with every digest shown in full.

The first class reads the HTML the app serves; the second has Chromium (Debian's, through
Playwright) lay the page out, the app answering the browser's requests in-process.
"""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from typing import Any

import pytest

from tests.console.conftest import BASE_URL, Console
from tests.workflows.conftest import Harness

SEPARATOR = " · "


class StageParts(HTMLParser):
    """For each stage of the stage graph: its whole text and the texts of its parts (the
    elements directly inside it, separators left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.stages: list[tuple[str, list[str]]] = []
        self._in_graph = False
        self._depth = 0  # inside a stage: 1 = the <li>, 2 = one of its parts
        self._text: list[str] = []
        self._parts: list[str] = []
        self._part: list[str] | None = None
        self._separator = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "ol" and "stage-graph" in (found.get("class") or "").split():
            self._in_graph = True
            return
        if not self._in_graph:
            return
        if tag == "li" and self._depth == 0:
            self._depth, self._text, self._parts = 1, [], []
            return
        if self._depth >= 1:
            self._depth += 1
            if self._depth == 2:
                self._separator = "sep" in (found.get("class") or "").split()
                self._part = None if self._separator else []

    def handle_endtag(self, tag: str) -> None:
        if not self._in_graph:
            return
        if tag == "ol" and self._depth == 0:
            self._in_graph = False
        elif tag == "li" and self._depth == 1:
            self.stages.append(("".join(self._text), self._parts))
            self._depth = 0
        elif self._depth >= 2:
            if self._depth == 2 and self._part is not None:
                self._parts.append(" ".join("".join(self._part).split()))
                self._part = None
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth >= 1:
            self._text.append(data)
        if self._depth >= 2 and self._part is not None:
            self._part.append(data)


def stage_parts(page: str) -> list[tuple[str, list[str]]]:
    parser = StageParts()
    parser.feed(page)
    return parser.stages


async def release_with_history(console: Console, harness: Harness) -> str:
    """A release in the government's window: two stages done (with notes), one current."""
    status = await harness.start()
    rid = status.release_id
    await harness.pass_internal_review(rid)
    await harness.at_stage(rid, "government_testing_window")
    await console.dev_signin("lee.legal")
    return rid


class TestStageList:
    """Each stage reads title · id · status · time · note: between any two parts there is a
    separator, so no two words run together (as text, in a reader, or copied)."""

    async def test_no_text_runs_together(self, console: Console, harness: Harness) -> None:
        rid = await release_with_history(console, harness)
        page = (await console.get(f"/releases/{rid}")).text
        stages = stage_parts(page)
        assert len(stages) == 6, stages
        for text, parts in stages:
            assert len(parts) >= 3, parts  # title, id, status at least
            assert all(parts), parts
            assert " ".join(text.split()) == SEPARATOR.join(parts), (text, parts)
        done = stages[0][1]
        assert done[2] == "done" and done[3].endswith("UTC")
        assert done[4].startswith("approved by "), done
        assert any(p.startswith("since ") for p in stages[2][1]), stages[2]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


class TestFitsTheWindow:
    """At 1280 px the page needs no horizontal scrolling: the evidence, decisions and audit
    tables fit, each sha256 shown in full (wrapped inside its cell), each stage's parts on lines
    of their own."""

    async def test_page_fits_1280_px(self, console: Console, harness: Harness) -> None:
        from playwright.async_api import Route, async_playwright

        executable = chromium()
        rid = await release_with_history(console, harness)
        status = await harness.releases.status(rid)

        async def answer(route: Route) -> None:
            path = route.request.url.removeprefix(BASE_URL)
            got = await console.get(path)
            await route.fulfill(status=got.status_code, headers=dict(got.headers), body=got.content)

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--headless=new"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.route(f"{BASE_URL}/**", answer)
                await page.goto(f"{BASE_URL}/releases/{rid}")
                await page.evaluate(
                    "document.querySelectorAll('details').forEach(d => d.open = true)"
                )
                found: dict[str, Any] = await page.evaluate(
                    """() => ({
                      width: document.documentElement.scrollWidth,
                      tables: [...document.querySelectorAll('table')].map(
                        t => [t.className, Math.ceil(t.getBoundingClientRect().right)]),
                      digests: [...document.querySelectorAll('table.evidence code.digest')].map(
                        c => c.textContent),
                      stages: [...document.querySelectorAll('.stage-graph li')].map(
                        li => li.innerText.split('\\n').filter(line => line.trim())),
                    })"""
                )
            finally:
                await browser.close()
        assert found["width"] <= 1280, found
        assert {name for name, _ in found["tables"]} >= {
            "rows evidence",
            "rows decisions",
            "rows audit",
        }
        assert all(right <= 1280 for _, right in found["tables"]), found["tables"]
        assert found["digests"] == [status.spec.artifact.sha256] + [
            e.sha256 for e in status.spec.evidence
        ]
        first = found["stages"][0]
        assert first[2:4] == ["done", first[3]] and first[3].endswith("UTC"), first
        assert "·" not in " ".join(" ".join(s) for s in found["stages"])  # stacked, no separators

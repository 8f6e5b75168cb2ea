"""An operator finds releases in the real Temporal UI with the documented queries, in Chromium.

The session's test server has no UI, so this test starts its own ``temporal server start-dev``
(UI on), a worker, and three releases: one in its government testing window, one held by an
operator, one waiting for its internal review. Headless Chromium (Debian's package, driven by
Playwright) types each documented query into the UI's filter box, opens the release in its
window and checks that the summary and the current details are on its page.

Run it alone with ``pytest -m browser``. Without chromium or playwright it skips, except in CI
(``CI`` set), where a missing browser is a failure. ``GATEKEEPER_UPDATE_SCREENSHOTS=1`` also
refreshes the screenshots that ``docs/operators.md`` shows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from gatekeeper.adapters.policy_store import PolicyStore
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, OperatorRequest, ReleaseStatus
from gatekeeper.releases import Releases
from tests import factories, signing
from tests.browser.console_fixtures import chromium_path
from tests.helpers import adapters_for, running_worker, status_until
from tests.workers.helpers import free_ports
from workers.devserver import DevServer

pytestmark = pytest.mark.browser

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TASK_QUEUE = "gatekeeper-ui-test"


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, or skip (fail in CI), before any server starts."""
    return chromium_path()


@dataclass
class Scene:
    """The UI's address and the three releases on its server."""

    ui: str
    in_window: ReleaseStatus
    held: str
    in_review: str


async def until(api: Releases, release_id: str, stage: str) -> ReleaseStatus:
    return await status_until(
        api,
        release_id,
        lambda s: s.stage == stage and s.awaiting is not None,
        what=f"waiting at {stage}",
        within=20,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def scene(chromium: str, tmp_path: Path) -> AsyncIterator[Scene]:
    del chromium  # only its check matters here: skip before starting anything
    port, ui_port = free_ports(2)
    adapters = adapters_for(TASK_QUEUE, tmp_path / "data")
    try:
        async with (
            DevServer(tmp_path / "server", port=port, ui_port=ui_port) as server,
            running_worker(server.client, TASK_QUEUE, adapters, threads=4),
        ):
            yield await _three_releases(
                server,
                Releases(server.client, TASK_QUEUE, signer=signing.signer()),
                adapters.policies,
            )
    finally:
        adapters.close()


async def _three_releases(server: DevServer, api: Releases, store: PolicyStore) -> Scene:
    ref = factories.install_policy(store, factories.policy())
    suffix = uuid.uuid4().hex[:6]
    window, held, review = f"aurora-{suffix}", f"borealis-{suffix}", f"cirrus-{suffix}"
    for release_id in (window, held, review):
        await api.start(factories.spec(release_id), ref)
    for release_id in (window, held, review):
        await until(api, release_id, "internal_review")
    for decider, role in factories.INTERNAL_REVIEW:
        await api.decide(window, DecisionKind.APPROVE, factories.decision(decider, role))
    await api.operate(
        held, "hold", OperatorRequest(by=factories.OPERATOR, reason="export-control review")
    )
    # A refusal the release records (the submitter holds no reviewer role): the timeline must
    # tell it from the accepted approval that follows.
    with contextlib.suppress(DecisionRefused):
        await api.decide(
            review, DecisionKind.APPROVE, factories.decision(factories.SUBMITTER, "safety")
        )
    await api.decide(review, DecisionKind.APPROVE, factories.decision("sam.safety", "safety"))
    in_window = await until(api, window, "government_testing_window")
    assert server.ui_url is not None
    return Scene(ui=server.ui_url, in_window=in_window, held=held, in_review=review)


class TestOperatorUi:
    """The documented filter queries find each release; its page shows summary and details."""

    async def test_find_and_read_releases_in_the_temporal_ui(
        self, chromium: str, scene: Scene, tmp_path: Path
    ) -> None:
        from playwright.async_api import Page, async_playwright, expect

        async def search(page: Page, query: str, shown: str, hidden: list[str]) -> None:
            box = page.get_by_test_id("workflow-manual-search-input")
            await box.fill(query)
            await box.press("Enter")
            await expect(page.get_by_role("link", name=f"release-{shown}")).to_be_visible()
            for other in hidden:
                await expect(page.get_by_role("link", name=f"release-{other}")).to_have_count(0)

        window = scene.in_window.release_id
        shots = [
            tmp_path / "operator-ui-filter.png",
            tmp_path / "operator-ui.png",
            tmp_path / "operator-ui-refused.png",
        ]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 1150})
            page.set_default_timeout(15_000)
            await page.goto(f"{scene.ui}/namespaces/default/workflows")
            await page.get_by_test_id("toggle-manual-query").click()

            await search(page, 'ReleaseState="held"', scene.held, [window, scene.in_review])
            await search(page, 'AwaitingRoles="legal"', scene.in_review, [window, scene.held])
            await search(
                page,
                'ReleaseStage="government_testing_window"',
                window,
                [scene.held, scene.in_review],
            )
            await page.screenshot(path=shots[0])

            await page.get_by_role("link", name=f"release-{window}").click()
            await expect(page.get_by_text("30-day government testing window").first).to_be_visible()
            await page.get_by_text("User Metadata", exact=True).click()
            # The UI renders each markdown field in its own sandboxed frame, in this order.
            summary, _, current = (page.frame_locator("iframe").nth(i) for i in range(3))
            await expect(
                summary.get_by_text("aurora 2.0.0 · risk high · submitted by rita.manager")
            ).to_be_visible()
            waiting = current.get_by_text("Waiting for:").locator("..")
            await expect(waiting).to_contain_text("the government testing window")
            await expect(waiting).to_contain_text("government_liaison")
            await expect(current.get_by_text("Government window:")).to_be_visible()
            await expect(current.get_by_text("▶ current")).to_be_visible()
            await page.screenshot(path=shots[1])

            # The held release awaits the operator; its details hold no table (the UI draws one
            # without cell padding, running its columns together).
            await page.goto(f"{scene.ui}/namespaces/default/workflows/release-{scene.held}")
            await page.get_by_text("User Metadata", exact=True).click()
            current = page.frame_locator("iframe").nth(2)
            waiting = current.get_by_text("Waiting for:").locator("..")
            await expect(waiting).to_contain_text(
                "the release to resume at internal_review (export-control review) — from operator"
            )
            await expect(current.get_by_text("Internal review", exact=True)).to_be_visible()
            await expect(current.locator("table")).to_have_count(0)
            await expect(page.frame_locator("iframe").nth(1).locator("table")).to_have_count(0)

            # In the timeline the refused approval is followed by its own activity, whose summary
            # says so; the accepted one is not.
            await page.goto(f"{scene.ui}/namespaces/default/workflows/release-{scene.in_review}")
            refused = page.get_by_text("Refused approve by rita.manager: role_not_held")
            await expect(refused.first).to_be_visible()
            await expect(page.get_by_text("Refused approve by sam.safety")).to_have_count(0)
            await page.screenshot(path=shots[2])
            await browser.close()

        for shot in shots:
            assert shot.stat().st_size > 10_000, f"{shot} looks empty"
            if os.environ.get("GATEKEEPER_UPDATE_SCREENSHOTS"):
                shutil.copyfile(shot, DOCS_IMG / shot.name)

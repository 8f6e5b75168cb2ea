"""A whole release in the console: every human step taken in a real browser, each person signing
with their own passkey, then the dossier downloaded from the console verified offline.

The release manager starts the release from ``examples/release.yaml`` (starting is theirs, a CLI
or client step, not a console form); then the people of the demo policy
(``gatekeeper/policies/demo.yaml``) attest the evidence's authorship, review, record the
government's responses, vet the partner period and approve the launch, in the console.
``GATEKEEPER_UPDATE_SCREENSHOTS=1`` also refreshes the screenshots ``docs/console.md`` shows.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.models import ReleaseState
from tests.browser.console_fixtures import DOCS_IMG, Stack, Visitor, sample_spec
from tests.helpers import status_until

pytestmark = pytest.mark.browser

INTERNAL_REVIEW = [
    (
        "priya.natarajan",
        "safety",
        "Capability evals and safeguards are adequate for the high tier.",
    ),
    ("lena.fischer", "security", "Weights attestation verified; access controls reviewed."),
    ("hannah.cho", "legal", "Partner terms and confidentiality conditions in place."),
]


async def decided(visitor: Visitor, release_id: str, action: str, **fields: str) -> str:
    """Take ``action`` in the console; the flash line must not be a refusal."""
    flash = await visitor.decide(release_id, action, **fields)
    assert "refused" not in flash.lower(), f"{visitor.person} {action}: {flash}"
    return flash


class TestFullReleaseInTheConsole:
    """A release goes from start to ``launched`` with every authorship attestation, review,
    government response, partner-period vetting and launch approval taken in the console by the
    demo policy's people, each signing with their own passkey; the dossier downloaded from the
    console verifies offline with ``gatekeeper audit verify``, and names every signed request in
    it a passkey's."""

    async def test_start_to_launched(self, stack: Stack, tmp_path: Path) -> None:
        from playwright.async_api import expect

        shots: dict[str, Path] = {}
        rid = f"aurora-{uuid.uuid4().hex[:6]}"
        await stack.start(rid)

        for index, (person, role, comment) in enumerate(INTERNAL_REVIEW):
            del role  # the form offers the reviewer's only role
            async with stack.person(person) as reviewer:
                await reviewer.ensure_passkey()
                page = reviewer.page
                if index == 0:
                    await page.goto("/inbox")
                    row = page.locator(f"[data-testid=inbox-row][data-release='{rid}']")
                    await expect(row).to_have_count(1)
                    shots["console-inbox.png"] = await _shot(page, tmp_path, "console-inbox.png")
                    # The reviewer attests who wrote each piece of evidence (the demo policy
                    # requires it before the gate closes), one signed form per item.
                    for item in sample_spec(rid).evidence:
                        await decided(
                            reviewer,
                            rid,
                            "attest_authorship",
                            evidence_id=item.id,
                            authors=", ".join(item.authors),
                        )
                        attested = page.locator(f"tr[data-evidence='{item.id}']")
                        await expect(attested.get_by_test_id("authorship-attested")).to_be_visible()
                await decided(reviewer, rid, "approve", comment=comment)
                await expect(page.get_by_test_id("signature-kind").first).to_contain_text("passkey")
                if index == 0:
                    shots["console-passkey-decision.png"] = await _shot(
                        page, tmp_path, "console-passkey-decision.png"
                    )

        await stack.until(rid, "government_testing_window")
        async with stack.person("grace.whitfield") as grace:
            await grace.ensure_passkey()
            government = "record_government_response"
            await decided(
                grace,
                rid,
                government,
                kind="concern_raised",
                concern="Clearinghouse finding CH-0412: prompt-injection path to tool use",
                reference="CH-0412",
            )
            await expect(grace.page.get_by_text("CH-0412").first).to_be_visible()
            shots["console-release.png"] = await _shot(grace.page, tmp_path, "console-release.png")
            await decided(
                grace,
                rid,
                government,
                kind="concern_resolved",
                concern_id="c1",
                reference="CH-0412 closed: mitigation verified",
            )
            await decided(grace, rid, government, kind="cleared", reference="testing complete")

        # The partner period (5 s on the demo clock) passes on the workflow's own clock.
        await stack.until(rid, "vetted_partner_access")
        await stack.env.fast_forward(stack.releases.handle(rid), timedelta(seconds=6))
        await status_until(
            stack.releases,
            rid,
            lambda s: bool(s.awaiting and "security" in s.awaiting.roles),
            what="the partner vetting gate",
        )
        async with stack.person("marcus.bell") as marcus:
            await marcus.ensure_passkey()
            await decided(
                marcus, rid, "approve", comment="No partner incidents during early access."
            )

        await stack.until(rid, "launch_approval")
        async with stack.person("elena.marsh") as elena:
            await elena.ensure_passkey()
            await decided(elena, rid, "approve", comment="Residual risk accepted; launch.")
            status = await status_until(stack.releases, rid, lambda s: s.state.terminal)
            assert status.state is ReleaseState.LAUNCHED
            await elena.page.goto(f"/releases/{rid}")
            await expect(elena.page.get_by_test_id("release-state")).to_have_text("launched")

            # The page's own check of the chain and every signature in it, then the list of
            # releases, which shows the outcome.
            await elena.page.get_by_test_id("verify-button").click()
            await expect(elena.page.get_by_test_id("verify-result")).to_have_text(
                re.compile(r"^verified: ")
            )
            await elena.page.goto("/releases?state=launched")
            row = elena.page.locator(f"[data-testid=release-row][data-release='{rid}']")
            await expect(row.get_by_test_id("outcome")).to_have_text("launched")
            await elena.page.goto(f"/releases/{rid}")

            # The dossier, downloaded as a reviewer would, verified from the file alone.
            async with elena.page.expect_download() as download_info:
                await elena.page.get_by_test_id("dossier-link").click()
            dossier = tmp_path / f"{rid}-dossier.json"
            await (await download_info.value).save_as(dossier)

        # Every signed request in the chain is a step taken in the console, with a passkey.
        kinds = attestation_kinds(json.loads(dossier.read_text()))
        assert kinds == {
            "authorship_attested": {"webauthn"},
            "decision_approve": {"webauthn"},
            "concern_raised": {"webauthn"},
            "concern_resolved": {"webauthn"},
            "government_cleared": {"webauthn"},
        }, kinds
        root = stack.adapters.identity.root()
        assert root is not None
        offline = tmp_path / "offline"
        code, out, err = await stack.cli(
            "audit", "verify", str(dossier), "--trust-root", root.key_id, "--no-anchors",
            ok=False, data_dir=offline,
        )  # fmt: skip
        assert code == 0, err or out
        assert "passkey" in out

        for name, shot in shots.items():
            assert shot.stat().st_size > 10_000, f"{shot} looks empty"
            if os.environ.get("GATEKEEPER_UPDATE_SCREENSHOTS"):
                shutil.copyfile(shot, DOCS_IMG / name)


async def _shot(page: object, folder: Path, name: str) -> Path:
    from playwright.async_api import Page

    assert isinstance(page, Page)
    path = folder / name
    await page.screenshot(path=path, full_page=True)
    return path


def attestation_kinds(dossier: dict[str, Any]) -> dict[str, set[str]]:
    """The kinds of signature on the chain's signed requests, by the action of the event that
    carries each attestation ("key" when the attestation names none)."""
    found: dict[str, set[str]] = {}
    for event in dossier["audit"]:
        attestation = event.get("details", {}).get("attestation")
        if isinstance(attestation, dict):
            kind = str(attestation.get("kind", "key"))
            found.setdefault(str(event["action"]), set()).add(kind)
    return found

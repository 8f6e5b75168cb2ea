"""The release page over HTTP (httpx against the app, no browser) on a real worker: what it shows,
which forms it offers to whom, and what it refuses before anything reaches the worker."""

from __future__ import annotations

import asyncio
import html
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from gatekeeper.models import DecisionKind, ReleaseStatus
from gatekeeper.models.messages import DecisionRequest
from tests import factories
from tests.console.conftest import Console, console_for, console_settings
from tests.identity_fixtures import write_key
from tests.workflows.conftest import Harness

FLASH = re.compile(r'data-testid="flash"[^>]*>([^<]*)<')
FORMS = re.compile(r'data-testid="decision-form" data-action="([a-z_]+)"')
SEEN = re.compile(r'name="seen" value="([^"]*)"')


def flash_of(page: str) -> str:
    found = FLASH.search(page)
    assert found, "no flash line on the page"
    return html.unescape(found.group(1)).strip()


def forms_on(page: str) -> list[str]:
    return FORMS.findall(page)


def seen_on(page: str) -> str:
    found = SEEN.search(page)
    assert found, "no binding on the page"
    return html.unescape(found.group(1))


async def unchanged(harness: Harness, before: ReleaseStatus) -> None:
    """Nothing reached the release: no decision, no audited refusal, no new event."""
    after = await harness.releases.status(before.release_id)
    assert after.audit_length == before.audit_length
    assert after.gates == before.gates
    assert after.requests == before.requests
    assert after.status_version == before.status_version


async def act(console: Console, release_id: str, data: dict[str, str]) -> str:
    """POST a decision form; the flash line of the page it leads back to."""
    token = await console.csrf(f"/releases/{release_id}")
    answer = await console.post(f"/releases/{release_id}/act", data={"csrf_token": token, **data})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/releases/{release_id}"
    return flash_of((await console.get(f"/releases/{release_id}")).text)


async def refused_outright(console: Console, release_id: str, data: dict[str, str]) -> str:
    """POST a decision the page does not offer the person: 403 and the refusal, no redirect."""
    token = await console.csrf(f"/releases/{release_id}")
    answer = await console.post(f"/releases/{release_id}/act", data={"csrf_token": token, **data})
    assert answer.status_code == 403, (answer.status_code, answer.text[:300])
    return flash_of(answer.text)


class TestThePage:
    """The page shows the stages, whom the release awaits by name, the evidence with digests,
    the decisions with their signature kind, and the audit chain."""

    async def test_reviewer_sees_the_release_and_their_forms(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        page = await console.get(f"/releases/{status.release_id}")
        assert page.status_code == 200, page.text
        text = page.text
        assert 'data-testid="stage-graph"' in text
        assert 'data-stage="internal_review" data-status="current"' in text
        assert 'data-testid="awaited"' in text and "Sam Safety" in text and "Lee Legal" in text
        for item in status.spec.evidence:
            assert item.sha256 in text
        assert status.spec.artifact.sha256 in text
        assert set(forms_on(text)) == {"approve", "reject", "request_changes", "delegate"}
        seen = json.loads(seen_on(text))
        assert seen["subject_id"] == status.release_id and seen["stage"] == "internal_review"
        assert seen["first_run_id"] == status.first_run_id
        assert 'data-testid="verify-button"' in text and 'data-testid="dossier-link"' in text
        assert "/static/console.js" in text and "<script>" not in text

    async def test_someone_without_a_role_sees_no_decision_form(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin(factories.SUBMITTER)
        page = await console.get(f"/releases/{status.release_id}")
        assert page.status_code == 200
        assert forms_on(page.text) == []

    async def test_decisions_show_their_signature_kind_and_markup_inert(
        self, console: Console, harness: Harness
    ) -> None:
        description = "Model <b>bold</b> <script>alert('spec')</script> **strong** [red]x[/red]"
        status = await harness.start(
            factories.spec(f"r-{uuid.uuid4().hex[:10]}", description=description)
        )
        comment = (
            '<script>alert("x")</script> **bold** [click](javascript:alert(1)) [red]Rich[/red]'
        )
        await harness.releases.decide(
            status.release_id,
            DecisionKind.APPROVE,
            DecisionRequest(decider="sam.safety", role="safety", comment=comment),
        )
        await console.dev_signin("lee.legal")
        text = (await console.get(f"/releases/{status.release_id}")).text
        assert "<script>alert" not in text and "<strong>" not in text
        assert 'href="javascript' not in text
        shown = re.search(r'data-testid="release-description">([^<]*)<', text)
        assert shown and html.unescape(shown.group(1)) == description
        cell = re.search(r'data-testid="decision-comment-text">([^<]*)</td>', text)
        assert cell and html.unescape(cell.group(1)) == comment  # shown exactly as written
        kinds = re.findall(r'data-testid="signature-kind" data-kind="([a-z]+)">([^<]*)<', text)
        assert kinds == [("key", "CLI key")]
        assert "✓ verifies" in text

    async def test_an_unknown_release_is_not_found(self, console: Console) -> None:
        await console.dev_signin("sam.safety")
        assert (await console.get("/releases/no-such-release")).status_code == 404
        assert (await console.get("/releases/Bad%20Id")).status_code == 404


class TestRefusedBeforeSending:
    """The console refuses, and sends nothing, a decision whose form the page does not offer
    the person, one without a passkey's signature, and one without its CSRF token."""

    async def test_forged_post_without_the_role_is_refused(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("eve.exec")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        before = await harness.releases.status(status.release_id)
        line = await refused_outright(
            console,
            status.release_id,
            {"action": "approve", "role": "safety", "comment": "forged", "seen": seen},
        )
        assert line == "refused: you may not approve this release now"
        await unchanged(harness, before)

    async def test_forged_post_carrying_nothing_the_page_gave_is_refused(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("eve.exec")
        before = await harness.releases.status(status.release_id)
        line = await refused_outright(
            console,
            status.release_id,
            {"action": "approve", "role": "safety", "signature": "AAAA", "nonce": "0" * 32},
        )
        assert line == "refused: you may not approve this release now"
        await unchanged(harness, before)

    async def test_forged_role_is_refused(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        before = await harness.releases.status(status.release_id)
        line = await refused_outright(
            console, status.release_id, {"action": "approve", "role": "security", "seen": seen}
        )
        assert line == "refused: you may not decide this gate as 'security'"
        await unchanged(harness, before)

    async def test_a_decision_without_a_passkey_signature_is_not_sent(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        before = await harness.releases.status(status.release_id)
        line = await act(
            console, status.release_id, {"action": "approve", "role": "safety", "seen": seen}
        )
        assert line.startswith("refused: a decision in the console is signed with your passkey")
        await unchanged(harness, before)

    async def test_csrf_is_required_for_act_and_prepare(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        before = await harness.releases.status(status.release_id)
        answer = await console.post(
            f"/releases/{status.release_id}/act",
            data={"action": "approve", "role": "safety", "seen": seen},
        )
        assert answer.status_code == 403 and "CSRF" in answer.text
        prepared = await console.post(
            f"/releases/{status.release_id}/prepare",
            json={"action": "approve", "fields": {"role": "safety"}, "seen": seen},
            headers={"X-CSRF-Token": "wrong"},
        )
        assert prepared.status_code == 403
        assert "CSRF" in prepared.json()["error"]
        await unchanged(harness, before)

    async def test_a_binding_shown_for_another_release_is_refused(
        self, console: Console, harness: Harness
    ) -> None:
        first = await harness.start()
        second = await harness.start()
        await console.dev_signin("sam.safety")
        seen = seen_on((await console.get(f"/releases/{first.release_id}")).text)
        token = await console.csrf(f"/releases/{second.release_id}")
        answer = await console.post(
            f"/releases/{second.release_id}/prepare",
            json={"action": "approve", "fields": {"role": "safety"}, "seen": seen},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 400
        assert answer.json() == {
            "error": f"refused: the form was shown for {first.release_id}, not {second.release_id}"
        }

    async def test_prepare_refuses_a_form_not_offered(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("eve.exec")
        token = await console.csrf(f"/releases/{status.release_id}")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        answer = await console.post(
            f"/releases/{status.release_id}/prepare",
            json={"action": "approve", "fields": {"role": "safety"}, "seen": seen},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 403
        assert answer.json() == {"error": "refused: you may not approve this release now"}


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_console(harness: Harness, tmp_path: Path) -> AsyncIterator[Console]:
    """A console with a gateway key ([console] gateway_key), on the harness's queue."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file = tmp_path / "console-gateway.pem"
    write_key(key_file, Ed25519PrivateKey.generate())
    await asyncio.to_thread(harness.install, factories.policy(), default=True)
    settings = console_settings(
        harness.env.client,
        harness.data_dir,
        harness.releases.task_queue,
        console={"gateway_key": str(key_file)},
    )
    async with console_for(settings) as found:
        yield found


class TestGatewayMode:
    """A decision attested by the console (mode=gateway) is refused, nothing sent, unless the
    release's policy lists the action in gateway_attestation."""

    async def test_gateway_refused_when_the_policy_does_not_allow_it(
        self, gateway_console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await gateway_console.dev_signin("sam.safety")
        page = (await gateway_console.get(f"/releases/{status.release_id}")).text
        assert 'data-testid="decision-submit-gateway"' not in page
        before = await harness.releases.status(status.release_id)
        line = await act(
            gateway_console,
            status.release_id,
            {"action": "approve", "role": "safety", "seen": seen_on(page), "mode": "gateway"},
        )
        assert line == (
            f"the policy {status.policy_id}@{status.policy_version} does not accept "
            "gateway-attested approve; sign with your passkey or CLI key"
        )
        await unchanged(harness, before)


class TestVerifyAndDossier:
    """The verify button re-checks the chain and every signature on the server, as
    ``audit verify`` does; the dossier downloads as the JSON ``audit verify`` reads."""

    async def test_verify_button_reports_the_chain_verified(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await harness.approve(status.release_id, "sam.safety", "safety")
        await console.dev_signin("lee.legal")
        token = await console.csrf(f"/releases/{status.release_id}")
        answer = await console.post(
            f"/releases/{status.release_id}/verify", data={"csrf_token": token}
        )
        assert answer.status_code == 200, answer.text
        found = re.search(r'data-testid="verify-result"[^>]*>([^<]*)<', answer.text)
        assert found, answer.text[-2000:]
        result = html.unescape(found.group(1))
        assert result.startswith("verified: ok: "), result
        assert "1 signed request(s)" in result

    async def test_dossier_downloads_as_json(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        answer = await console.get(f"/releases/{status.release_id}/dossier")
        assert answer.status_code == 200
        assert "attachment" in answer.headers["content-disposition"]
        dossier = answer.json()
        assert dossier["release_id"] == status.release_id
        assert (
            dossier["audit_head"] == (await harness.releases.status(status.release_id)).audit_head
        )

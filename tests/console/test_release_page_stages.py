"""The release page at every kind of stage (over HTTP, real worker): the government's window with
its countdown, concerns and delays; delegations and their revocation; the partner list decided
entry by entry with a passkey; an ended release's outcome."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

from gatekeeper.models.enums import GovernmentResponseKind
from gatekeeper.models.messages import DelegationRequest, GovernmentResponse
from gatekeeper.models.policy import AccessGrantStage, LaunchStage, NotificationPolicy
from tests import factories
from tests.console.conftest import Console
from tests.console.test_release_page import refused_outright, seen_on, unchanged
from tests.console.test_release_page_passkeys import authenticator, register_passkey, sign_and_act
from tests.workflows.conftest import Harness

FORM_ACTIONS = re.compile(r'data-testid="decision-form" data-action="([a-z_]+)"')


def actions_on(page: str) -> list[str]:
    return FORM_ACTIONS.findall(page)


class TestGovernmentWindow:
    """In the window, the page shows its end and countdown, the concerns and delays, and offers
    the liaison the government's responses (resolving a concern only while one is open)."""

    async def test_window_concern_and_delay(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        concern = "<img src=x onerror=alert(1)> eval gap"
        await harness.releases.respond(
            rid,
            GovernmentResponse(
                by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RAISED, concern=concern
            ),
        )
        await console.dev_signin(factories.LIAISON)
        page = (await console.get(f"/releases/{rid}")).text
        assert 'data-testid="window-countdown"' in page
        assert re.search(r'data-testid="window-countdown" data-countdown="[0-9T:.-]+Z">in ', page)
        assert "<img" not in page and html.escape(concern, quote=False) in page
        assert "record_government_response" in actions_on(page)
        assert 'value="concern_resolved"' in page and 'value="cleared"' in page

        await console.dev_signin("sam.safety")
        assert "record_government_response" not in actions_on(
            (await console.get(f"/releases/{rid}")).text
        )

    async def test_liaison_records_a_delay_with_a_passkey(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.pass_internal_review(rid)
        window = await harness.at_stage(rid, "government_testing_window")
        assert window.government.window_ends_at is not None
        until = (window.government.window_ends_at + timedelta(days=3)).astimezone(UTC)
        await console.dev_signin(factories.LIAISON)
        soft = authenticator(f"gus-{rid}")
        await register_passkey(console, harness, soft)
        line = await sign_and_act(
            console,
            soft,
            rid,
            "record_government_response",
            {
                "kind": "delay_requested",
                "delay_until": until.strftime("%Y-%m-%dT%H:%M"),
                "reference": "letter 7",
            },
        )
        assert "delay" in line, line
        after = await harness.releases.status(rid)
        assert [d.reference for d in after.government.delays] == ["letter 7"]


class TestDelegation:
    """A reviewer delegates a gate role by passkey; the delegate then sees the gate's forms for
    that role, and the delegator a form to revoke it."""

    async def test_delegate_then_revoke(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await console.dev_signin("sara.safety")
        soft = authenticator(f"sara-{rid}")
        await register_passkey(console, harness, soft)
        until = datetime.now(UTC) + timedelta(days=2)
        line = await sign_and_act(
            console,
            soft,
            rid,
            "delegate",
            {"role": "safety", "to": "ed.exec", "until": until.strftime("%Y-%m-%dT%H:%M")},
        )
        assert "ed.exec" in line, line
        page = (await console.get(f"/releases/{rid}")).text
        assert "revoke_delegation" in actions_on(page)

        await console.dev_signin("ed.exec")
        delegate_page = (await console.get(f"/releases/{rid}")).text
        assert "approve" in actions_on(delegate_page)
        assert "safety (for sara.safety)" in delegate_page

        await console.dev_signin("sara.safety")
        line = await sign_and_act(
            console, soft, rid, "revoke_delegation", {"to": "ed.exec", "role": "safety"}
        )
        assert "revoke" in line or "took back" in line or "ed.exec" in line, line
        await console.dev_signin("ed.exec")
        assert "approve" not in actions_on((await console.get(f"/releases/{rid}")).text)

    async def test_revoking_someone_elses_delegation_is_refused(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.releases.delegate(
            rid,
            DelegationRequest(
                by="sara.safety",
                to="ed.exec",
                role="safety",
                until=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        await console.dev_signin("sam.safety")
        page = (await console.get(f"/releases/{rid}")).text
        assert "revoke_delegation" not in actions_on(page)
        before = await harness.releases.status(rid)
        line = await refused_outright(
            console,
            rid,
            {
                "action": "revoke_delegation",
                "to": "ed.exec",
                "role": "safety",
                "seen": seen_on(page),
            },
        )
        assert line == "refused: you may not revoke a delegation on this release now"
        await unchanged(harness, before)


def partner_policy() -> object:
    return factories.policy(
        version="partners",
        stages=[
            AccessGrantStage(
                id="vetted_partner_access",
                minimum_period=timedelta(days=2),
                government_approves_partners=True,
            ),
            LaunchStage(id="public_launch", surfaces=["api"]),
        ],
        notifications=NotificationPolicy(),
    )


class TestPartnerList:
    """The liaison decides partner list entries by passkey (several at once); a partner not on
    the undecided list is refused by the console."""

    async def test_liaison_approves_partners(self, console: Console, harness: Harness) -> None:
        policy = partner_policy()
        status = await harness.start(policy=policy)  # type: ignore[arg-type]
        rid = status.release_id
        await harness.until(
            rid, lambda s: s.awaiting is not None and "government's decision" in s.awaiting.what
        )
        await console.dev_signin(factories.LIAISON)
        page = (await console.get(f"/releases/{rid}")).text
        assert "approve_partners" in actions_on(page)
        for partner in ("acme-labs", "brit-ai", "invited-co"):
            assert f'name="partners" value="{partner}"' in page

        before = await harness.releases.status(rid)
        line = await refused_outright(
            console,
            rid,
            {
                "action": "approve_partners",
                "partners": ["acme-labs", "far-away"],
                "decision": "approve",
                "seen": seen_on(page),
            },
        )
        assert line == "refused: not undecided on the partner list: far-away"
        await unchanged(harness, before)

        soft = authenticator(f"gus-partners-{rid}")
        await register_passkey(console, harness, soft)
        line = await sign_and_act(
            console,
            soft,
            rid,
            "approve_partners",
            {"partners": ["acme-labs", "brit-ai"], "decision": "approve", "reference": "L-7"},  # type: ignore[dict-item]
        )
        assert "acme-labs" in line, line
        after = await harness.until(rid, lambda s: len(s.grants) == 2)
        assert sorted(g.partner_id for g in after.grants) == ["acme-labs", "brit-ai"]
        page = (await console.get(f"/releases/{rid}")).text
        assert "2 grant(s) to 2 partner(s)" in page
        assert re.findall(r'name="partners" value="([a-z-]+)"', page) == ["invited-co"]


class TestEnded:
    """An ended release shows its outcome and offers no form to anyone."""

    async def test_launched_release(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.launch(rid)
        await console.dev_signin(factories.OPERATOR)
        page = (await console.get(f"/releases/{rid}")).text
        assert 'data-testid="release-state" class="state state-launched">launched<' in page
        assert actions_on(page) == []
        assert 'data-status="done"' in page
        assert 'data-stage="outcome" data-status="launched"' in page  # the graph ends in it


class TestAuthorship:
    """Under a policy that requires attested authorship, a reviewer of a gate covering the
    evidence attests who wrote it by passkey; an author may attest only their own authorship."""

    async def test_reviewer_attests_an_author_refused_for_others(
        self, console: Console, harness: Harness
    ) -> None:
        policy = factories.policy(version="attested", require_attested_authorship=True)
        spec = factories.spec(f"r-{uuid.uuid4().hex[:10]}")
        card = spec.evidence[1].model_copy(update={"authors": [factories.LIAISON]})
        spec = spec.model_copy(update={"evidence": [spec.evidence[0], card]})
        status = await harness.start(spec, policy=policy)
        rid = status.release_id

        # The liaison decides no gate: he may attest only his own authorship of what he wrote.
        await console.dev_signin(factories.LIAISON)
        page = (await console.get(f"/releases/{rid}")).text
        assert "attest_authorship" in actions_on(page)
        assert '<option value="system-card">system-card (your own authorship only)' in page
        assert 'value="capability-eval"' not in page
        before = await harness.releases.status(rid)
        line = await refused_outright(
            console,
            rid,
            {
                "action": "attest_authorship",
                "evidence_id": "capability-eval",
                "authors": factories.LIAISON,
                "seen": seen_on(page),
            },
        )
        assert line == "refused: you may not attest the authorship of 'capability-eval' now"
        line = await refused_outright(
            console,
            rid,
            {
                "action": "attest_authorship",
                "evidence_id": "system-card",
                "authors": "sam.safety",
                "seen": seen_on(page),
            },
        )
        assert line == "refused: you may attest only your own authorship of 'system-card'"
        await console.dev_signin(factories.SUBMITTER)
        assert "attest_authorship" not in actions_on((await console.get(f"/releases/{rid}")).text)
        await unchanged(harness, before)

        await console.dev_signin("sam.safety")
        soft = authenticator(f"sam-attest-{rid}")
        await register_passkey(console, harness, soft)
        line = await sign_and_act(
            console,
            soft,
            rid,
            "attest_authorship",
            {"evidence_id": "capability-eval", "authors": f"{factories.AUTHOR}, jun.park"},
        )
        assert (
            line == f"sam.safety attested that {factories.AUTHOR}, jun.park wrote capability-eval"
        )
        page = (await console.get(f"/releases/{rid}")).text
        assert f"authors attested by sam.safety: {factories.AUTHOR}, jun.park" in page
        assert '<option value="capability-eval">' not in page  # attested at this digest

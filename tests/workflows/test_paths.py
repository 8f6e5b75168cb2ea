"""Every way a release can go besides straight through: rejections, changes, delays, concerns."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from gatekeeper.errors import DecisionRefused, ReleaseExists
from gatekeeper.models import (
    AmendRequest,
    DecisionKind,
    EvidenceKind,
    EvidenceRef,
    GovernmentResponse,
    GovernmentResponseKind,
    ReleaseState,
)
from tests import factories
from tests.workflows.conftest import Harness


async def to_window(harness: Harness) -> str:
    status = await harness.start()
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.pass_internal_review(rid)
    await harness.at_stage(rid, "government_testing_window")
    return rid


async def to_stage(harness: Harness, stage: str) -> str:
    """Drive a fresh release to ``stage`` with the default approvals and clocks."""
    rid = await to_window(harness) if stage != "internal_review" else None
    if rid is None:
        status = await harness.start()
        await harness.at_stage(status.release_id, "internal_review")
        return status.release_id
    if stage == "government_testing_window":
        return rid
    await harness.skip(rid, 31)
    await harness.at_stage(rid, "vetted_partner_access")
    await harness.skip(rid, 15)
    await harness.until(rid, lambda s: bool(s.awaiting and "security" in s.awaiting.roles))
    if stage == "vetted_partner_access":
        return rid
    await harness.approve(rid, "sec.two", "security")
    await harness.at_stage(rid, "launch_approval")
    return rid


class TestRejection:
    """A reject at any approval gate ends the release and revokes every grant it made."""

    @pytest.mark.parametrize(
        ("stage", "decider", "role"),
        [
            ("internal_review", "lee.legal", "legal"),
            ("vetted_partner_access", "sec.one", "security"),
            ("launch_approval", "ed.exec", "executive"),
        ],
    )
    async def test_reject_ends_release(
        self, harness: Harness, stage: str, decider: str, role: str
    ) -> None:
        rid = await to_stage(harness, stage)
        before = await harness.releases.status(rid)
        result = await harness.releases.decide(
            rid, DecisionKind.REJECT, factories.decision(decider, role, comment="not ready")
        )
        assert result.state is ReleaseState.REJECTED
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.REJECTED
        assert f"rejected at {stage} by {decider}" in outcome.status.outcome
        granted = {g.grant_id for g in before.grants}
        assert {g.grant_id for g in outcome.status.grants if g.status == "revoked"} == granted
        registry = harness.adapters.registry.list_grants(rid)
        assert all(g.status == "revoked" for g in registry)
        assert len(registry) == len(granted), "a rejected gate revokes nothing it never granted"

    async def test_decisions_after_the_end_are_refused(self, harness: Harness) -> None:
        rid = await to_stage(harness, "internal_review")
        await harness.releases.decide(
            rid, DecisionKind.REJECT, factories.decision("lee.legal", "legal")
        )
        await harness.handle(rid).result()
        with pytest.raises(DecisionRefused, match=r"ended|rejected"):
            await harness.approve(rid, "sam.safety", "safety")


class TestChanges:
    """Request-changes blocks the gate until the submitter amends; amends lapse what they touch."""

    async def test_request_changes_then_amend_then_reapprove(self, harness: Harness) -> None:
        rid = await to_stage(harness, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")
        await harness.approve(rid, "sec.one", "security")
        await harness.releases.decide(
            rid,
            DecisionKind.REQUEST_CHANGES,
            factories.decision("lee.legal", "legal", comment="fix card"),
        )
        status = await harness.releases.status(rid)
        assert status.awaiting and status.awaiting.people == [factories.SUBMITTER]

        new_card = EvidenceRef(
            id="system-card",
            kind=EvidenceKind.SYSTEM_CARD,
            uri="https://evidence.example/system-card-v2.pdf",
            sha256=factories.sha("card v2"),
        )
        result = await harness.releases.amend(
            rid, AmendRequest(by=factories.SUBMITTER, evidence=[new_card])
        )
        assert "changed system-card" in result.message
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        lapsed = [d for d in gate.decisions if not d.valid]
        assert {d.person for d in lapsed} == {"sam.safety", "sec.one"}, (
            "both approvals covered the card"
        )
        assert all("system-card" in d.invalidated_reason for d in lapsed)

        await harness.pass_internal_review(rid)
        status = await harness.until(rid, lambda s: s.stage != "internal_review")
        assert status.gates["internal_review"].closed_at is not None

    async def test_amend_of_evidence_a_gate_does_not_cover_keeps_approvals(
        self, harness: Harness
    ) -> None:
        policy = factories.policy()
        gate = policy.stages[0]
        gate.covers = ["capability_evaluation"]  # type: ignore[union-attr]
        status = await harness.start(policy=policy)
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")
        new_card = EvidenceRef(
            id="system-card",
            kind=EvidenceKind.SYSTEM_CARD,
            uri="https://evidence.example/card3.pdf",
            sha256=factories.sha("card v3"),
        )
        result = await harness.releases.amend(
            rid, AmendRequest(by=factories.SUBMITTER, evidence=[new_card])
        )
        del result
        status = await harness.releases.status(rid)
        assert all(d.valid for d in status.gates["internal_review"].decisions)

    async def test_amend_of_evidence_a_closed_gate_approved_is_refused(
        self, harness: Harness
    ) -> None:
        rid = await to_window(harness)
        before = await harness.releases.status(rid)
        with pytest.raises(
            DecisionRefused, match="internal_review already passed on artifact"
        ) as err:
            await harness.releases.amend(
                rid, AmendRequest(by=factories.SUBMITTER, artifact_sha256=factories.sha("w2"))
            )
        assert err.value.rule == "amend_closed_gate"
        after = await harness.releases.status(rid)
        assert after.spec == before.spec


class TestGovernmentWindow:
    """The window is a durable timer: delays extend it, concerns block it, clearance ends it."""

    async def test_delay_extends_window(self, harness: Harness) -> None:
        rid = await to_window(harness)
        status = await harness.releases.status(rid)
        original = status.government.window_ends_at
        assert original is not None
        until = original + timedelta(days=10)
        await harness.releases.respond(
            rid,
            GovernmentResponse(
                by=factories.LIAISON, kind=GovernmentResponseKind.DELAY_REQUESTED, delay_until=until
            ),
        )
        await harness.skip(rid, 31)
        status = await harness.releases.status(rid)
        assert status.stage == "government_testing_window", "the delay keeps the window open"
        assert status.government.window_ends_at == until
        await harness.skip(rid, 10)
        await harness.at_stage(rid, "vetted_partner_access")

    async def test_delay_past_policy_maximum_is_refused(self, harness: Harness) -> None:
        rid = await to_window(harness)
        status = await harness.releases.status(rid)
        assert status.government.window_ends_at is not None
        with pytest.raises(DecisionRefused, match="past the policy's maximum") as err:
            await harness.releases.respond(
                rid,
                GovernmentResponse(
                    by=factories.LIAISON,
                    kind=GovernmentResponseKind.DELAY_REQUESTED,
                    delay_until=status.government.window_ends_at + timedelta(days=31),
                ),
            )
        assert err.value.rule == "delay_too_long"
        assert (
            await harness.releases.status(rid)
        ).government.window_ends_at == status.government.window_ends_at

    async def test_open_concern_blocks_window_end_until_resolved(self, harness: Harness) -> None:
        rid = await to_window(harness)
        await harness.releases.respond(
            rid,
            GovernmentResponse(
                by=factories.LIAISON,
                kind=GovernmentResponseKind.CONCERN_RAISED,
                concern="jailbreak finding",
            ),
        )
        await harness.skip(rid, 40)
        status = await harness.releases.status(rid)
        assert status.stage == "government_testing_window"
        assert status.awaiting and "concern c1" in status.awaiting.what
        await harness.releases.respond(
            rid,
            GovernmentResponse(by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RESOLVED),
        )
        await harness.at_stage(rid, "vetted_partner_access")

    async def test_not_covered_model_skips_government_stages(self, harness: Harness) -> None:
        spec = factories.spec(
            f"r-not-covered-{uuid.uuid4().hex[:8]}", covered_model="not_designated"
        )
        status = await harness.start(spec=spec)
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)
        status = await harness.at_stage(rid, "vetted_partner_access")
        skipped = [s.id for s in status.stages if s.status.value == "skipped"]
        assert skipped == ["government_submission", "government_testing_window"]
        with pytest.raises(DecisionRefused, match="no government stage"):
            await harness.releases.respond(
                rid, GovernmentResponse(by=factories.LIAISON, kind=GovernmentResponseKind.CLEARED)
            )


class TestIdentity:
    """A release id is used once, ever."""

    async def test_duplicate_release_id_is_refused(self, harness: Harness) -> None:
        spec = factories.spec(f"r-dup-{uuid.uuid4().hex[:8]}")
        await harness.start(spec=spec)
        with pytest.raises(ReleaseExists, match="already exists"):
            await harness.start(spec=spec)

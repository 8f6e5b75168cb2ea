"""A release travels the whole pipeline of the voluntary standard on a real Temporal server."""

from __future__ import annotations

from gatekeeper.audit import verify_chain
from gatekeeper.dossier import collect_dossier
from gatekeeper.models import GovernmentResponse, GovernmentResponseKind, ReleaseState
from tests import factories
from tests.workflows.conftest import Harness


class TestHappyPath:
    """Review, submission, a real 30-day window, partner access, launch approval, launch."""

    async def test_release_launches_after_full_window(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)

        status = await harness.at_stage(rid, "government_testing_window")
        assert status.government.receipt is not None
        assert status.awaiting and "government testing window" in status.awaiting.what
        ends = status.government.window_ends_at
        assert ends is not None and (ends - status.government.window_opened_at).days == 30

        await harness.skip(rid, 29)
        status = await harness.releases.status(rid)
        assert status.stage == "government_testing_window", "window must not end before 30 days"

        await harness.skip(rid, 2)
        status = await harness.at_stage(rid, "vetted_partner_access")
        granted = {g.partner_id for g in status.grants}
        assert granted == {"acme-labs", "brit-ai", "invited-co"}, (
            "far-away (jp) is outside the regions"
        )

        await harness.skip(rid, 15)
        status = await harness.until(
            rid, lambda s: bool(s.awaiting and "security" in s.awaiting.roles)
        )
        await harness.approve(rid, "sec.two", "security")

        await harness.at_stage(rid, "launch_approval")
        await harness.approve(rid, "eve.exec", "executive")

        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.LAUNCHED
        assert [s.status.value for s in outcome.status.stages] == ["done"] * 6
        chain = harness.chain(outcome)
        check = verify_chain(chain)
        assert check.ok, check.reason
        assert outcome.status.audit_head == chain[-1].hash
        # Without the audit store at hand, a dossier asks a worker, which replays the release.
        dossier = await collect_dossier(harness.releases, rid)
        assert dossier.audit == chain

    async def test_early_clearance_ends_window(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 3)
        result = await harness.releases.respond(
            rid, GovernmentResponse(by=factories.LIAISON, kind=GovernmentResponseKind.CLEARED)
        )
        assert "ends early" in result.message
        status = await harness.at_stage(rid, "vetted_partner_access")
        window = status.stage_record("government_testing_window")
        assert window is not None and "cleared early" in window.note

"""Races have defined outcomes: simultaneous approvals, decisions during a transition, a
withdrawal while a grant is being made."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.testing import WorkflowEnvironment

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, OperatorRequest, ReleaseState
from gatekeeper.models.io import GrantRequest, GrantResult
from gatekeeper.releases import Releases
from tests import factories, signing
from tests.helpers import adapters_for, running_worker, status_until
from tests.workflows.conftest import Harness


class TestSimultaneousDecisions:
    """Concurrent approvals are all judged; the gate closes exactly once."""

    async def test_two_reviewers_at_the_same_instant(self, harness: Harness) -> None:
        rid = f"r-race-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")
        results = await asyncio.gather(
            harness.approve(rid, "sec.one", "security"),
            harness.approve(rid, "lee.legal", "legal"),
        )
        assert len(results) == 2
        status = await harness.until(rid, lambda s: s.stage != "internal_review")
        audit = await harness.releases.audit(rid)
        assert sum(1 for e in audit if e.action == "gate_passed") == 1
        assert {d.person for d in status.gates["internal_review"].valid_approvals()} == {
            "sam.safety",
            "sec.one",
            "lee.legal",
        }

    async def test_same_person_twice_at_once_counts_once(self, harness: Harness) -> None:
        rid = f"r-race-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        outcomes = await asyncio.gather(
            harness.approve(rid, "sam.safety", "safety"),
            harness.approve(rid, "sam.safety", "safety"),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, DecisionRefused)]
        assert len(refused) == 1 and refused[0].rule == "already_decided"
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        assert [d.person for d in gate.valid_approvals()] == ["sam.safety"]

    async def test_approval_racing_the_transition(self, harness: Harness) -> None:
        """An approval that arrives as the gate closes is judged at the gate that was current:
        recorded there as an extra approval, or refused; it is never counted at the next gate."""
        rid = f"r-race-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")
        await harness.approve(rid, "sec.one", "security")
        outcomes = await asyncio.gather(
            harness.approve(rid, "lee.legal", "legal"),
            harness.approve(rid, "sara.safety", "safety", stage="internal_review"),
            return_exceptions=True,
        )
        assert not isinstance(outcomes[0], BaseException)
        status = await harness.at_stage(rid, "government_testing_window")
        recorded = {d.person for d in status.gates["internal_review"].decisions}
        if isinstance(outcomes[1], DecisionRefused):
            # (or its signature, made for internal_review, no longer binds the current stage)
            assert outcomes[1].rule in ("wrong_stage", "not_a_gate", "signature_binding")
            assert "sara.safety" not in recorded
        else:
            assert "sara.safety" in recorded
        assert all(g == "internal_review" for g in status.gates if status.gates[g].decisions)


class HeldGrants:
    """The real grant activity, held in flight until the test lets it go."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()

    @activity.defn(name="grant_partner_access")
    def grant_partner_access(self, request: GrantRequest) -> GrantResult:
        self.started.set()
        # Held until the test has withdrawn the release (bounded, so a failing test ends).
        self.release.wait(30)
        return self.real.grant_partner_access(request)  # type: ignore[attr-defined, no-any-return]


class TestWithdrawalDuringActivity:
    """Withdrawn while partner access is being granted: the grant completes, then every grant it
    made is revoked; the release ends withdrawn."""

    async def test_withdraw_while_granting(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        from activities.access import AccessActivities

        adapters = adapters_for(task_queue, tmp_path)
        held = HeldGrants(AccessActivities(adapters.registry))
        api = Releases(env.client, task_queue, signer=signing.signer())
        async with running_worker(
            env.client, task_queue, adapters, replacing=[held.grant_partner_access]
        ):
            try:
                rid = f"r-race-{uuid.uuid4().hex[:8]}"
                policy = factories.policy(window=timedelta(seconds=1))
                await factories.start_release(api, adapters.policies, factories.spec(rid), policy)
                await status_until(api, rid, lambda s: s.awaiting, what="internal review")
                for decider, role in factories.INTERNAL_REVIEW:
                    await api.decide(rid, DecisionKind.APPROVE, factories.decision(decider, role))
                # The one-second window elapses in real time; then the held grant starts.
                assert await asyncio.to_thread(held.started.wait, 20), "grant never started"
                result = await api.operate(
                    rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="flaw")
                )
                assert result.state is ReleaseState.WITHDRAWN
                status = await api.status(rid)
                assert status.status_version >= result.status_version
                assert not status.grants, "the grant was still in flight"
                with pytest.raises(DecisionRefused):
                    await api.decide(
                        rid, DecisionKind.APPROVE, factories.decision("sec.two", "security")
                    )
                # Only now, the release withdrawn, does the test let the grant complete.
                assert not adapters.registry.list_grants(rid), "granted before it was let go"
            finally:
                held.release.set()
            outcome = await api.handle(rid).result()
        assert outcome.status.state is ReleaseState.WITHDRAWN
        assert len(outcome.status.grants) == 3
        assert all(g.status == "revoked" for g in outcome.status.grants)
        assert all(g.status == "revoked" for g in adapters.registry.list_grants(rid))
        adapters.close()

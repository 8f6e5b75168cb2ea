"""Who may decide: quorums of distinct people, delegation, signatures, operators."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from gatekeeper import statements
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import (
    ApprovalGateStage,
    DelegationRequest,
    OperatorRequest,
    Policy,
    QuorumRequirement,
    ReleaseState,
    ReleaseStatus,
    UpdateResult,
)
from gatekeeper.releases import Releases
from gatekeeper.signed_requests import release_binding
from tests import factories
from tests import signing as test_keys
from tests.workflows.conftest import Harness


def policy_with(**changes: object) -> Policy:
    return factories.policy(**changes)


def two_of_three() -> Policy:
    base = factories.policy()
    stages = list(base.stages)
    stages[0] = ApprovalGateStage(
        id="internal_review",
        quorum=[QuorumRequirement(roles=["safety", "security", "legal"], count=2)],
    )
    return base.model_copy(update={"stages": stages})


async def started(harness: Harness, policy: Policy | None = None, **spec: object) -> str:
    rid = f"r-auth-{uuid.uuid4().hex[:8]}"
    await harness.start(spec=factories.spec(rid, **spec), policy=policy)
    await harness.at_stage(rid, "internal_review")
    return rid


async def refused(coro: object) -> DecisionRefused:
    with pytest.raises(DecisionRefused) as err:
        await coro  # type: ignore[misc]
    return err.value


class TestQuorum:
    """Quorums count distinct people; a person holding two roles counts once."""

    async def test_two_of_three_roles(self, harness: Harness) -> None:
        rid = await started(harness, two_of_three())
        await harness.approve(rid, "sam.safety", "safety")
        status = await harness.releases.status(rid)
        assert status.stage == "internal_review"
        assert status.awaiting and "2 × safety or security or legal (1/2)" in status.awaiting.what
        await harness.approve(rid, "lee.legal", "legal")
        await harness.until(rid, lambda s: s.stage != "internal_review")

    async def test_second_approver_of_same_role_satisfies_two_of_three(
        self, harness: Harness
    ) -> None:
        rid = await started(harness, two_of_three())
        await harness.approve(rid, "sam.safety", "safety")
        await harness.approve(rid, "sara.safety", "safety")
        await harness.until(rid, lambda s: s.stage != "internal_review")

    async def test_one_person_with_two_roles_fills_one_slot(self, harness: Harness) -> None:
        rid = await started(harness)
        await harness.approve(rid, "multi.role", "safety")
        err = await refused(harness.approve(rid, "multi.role", "security"))
        assert err.rule == "already_decided"
        await harness.approve(rid, "sec.one", "security")
        await harness.approve(rid, "lee.legal", "legal")
        await harness.until(rid, lambda s: s.stage != "internal_review")

    async def test_distinct_approvers_across_gates(self, harness: Harness) -> None:
        policy = factories.policy(distinct_approvers_across_gates=True)
        rid = await started(harness, policy)
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 31)
        await harness.at_stage(rid, "vetted_partner_access")
        await harness.skip(rid, 15)
        await harness.until(rid, lambda s: bool(s.awaiting and "security" in s.awaiting.roles))
        err = await refused(harness.approve(rid, "sec.one", "security"))
        assert err.rule == "distinct_approvers"
        assert "already approved internal_review" in str(err)
        await harness.approve(rid, "sec.two", "security")


class TestDelegation:
    """A delegate decides for the delegator until the delegation ends; both are recorded."""

    async def test_delegate_decides_and_both_are_recorded(self, harness: Harness) -> None:
        rid = await started(harness)
        until = datetime.now(UTC) + timedelta(days=3)
        await harness.releases.delegate(
            rid,
            DelegationRequest(
                by="lee.legal", to="sec.two", role="legal", until=until, reason="leave"
            ),
        )
        await harness.approve(rid, "sec.two", "legal")
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        (decision,) = gate.valid_approvals()
        assert (decision.person, decision.role, decision.on_behalf_of) == (
            "sec.two",
            "legal",
            "lee.legal",
        )
        err = await refused(harness.approve(rid, "lee.legal", "legal"))
        assert err.rule == "already_decided", "the delegator counts as having decided"

    async def test_delegation_expires(self, harness: Harness) -> None:
        rid = await started(harness)
        await harness.releases.delegate(
            rid,
            DelegationRequest(
                by="lee.legal",
                to="sec.two",
                role="legal",
                until=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        await harness.skip(rid, 2)
        err = await refused(harness.approve(rid, "sec.two", "legal"))
        assert err.rule == "role_not_held"

    async def test_delegate_cannot_approve_what_delegator_may_not(self, harness: Harness) -> None:
        rid = await started(harness)
        await harness.releases.delegate(
            rid,
            DelegationRequest(
                by=factories.AUTHOR,
                to="sec.two",
                role="safety",
                until=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        err = await refused(harness.approve(rid, "sec.two", "safety"))
        assert err.rule == "separation_of_duties"
        assert "delegated by ada.author" in str(err)

    async def test_submitter_as_delegate_is_refused(self, harness: Harness) -> None:
        rid = await started(harness, submitter="rm.reviewer")
        await harness.releases.delegate(
            rid,
            DelegationRequest(
                by="sam.safety",
                to="rm.reviewer",
                role="safety",
                until=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        err = await refused(harness.approve(rid, "rm.reviewer", "safety"))
        assert err.rule == "separation_of_duties"
        assert "rm.reviewer submitted this release" in str(err)


class TestSignedDecisions:
    """Only a fresh signature by a registered key of the decider, over what the release holds
    now, counts; the accepted decision's audit event keeps the signed statement."""

    def sign(
        self, key: Ed25519PrivateKey, status: ReleaseStatus, person: str, **over: Any
    ) -> dict[str, Any]:
        return statements.sign_request(
            key,
            action="approve",
            actor=person,
            request={"decider": person, "role": "safety", "stage": "internal_review"},
            binding=over.pop("binding", release_binding(status)),
            **over,
        )

    async def send(self, harness: Harness, rid: str, body: dict[str, Any]) -> UpdateResult:
        plain = Releases(harness.releases.client, harness.releases.task_queue)  # sends as is
        return await plain._update(rid, "approve", body)

    async def test_valid_signature_accepted_and_audited(self, harness: Harness) -> None:
        rid = await started(harness)
        status = await harness.releases.status(rid)
        assert status.first_run_id, "the status names the first run a signer binds"
        body = self.sign(test_keys.person_key("sam.safety"), status, "sam.safety")
        await self.send(harness, rid, body)
        audit = await harness.releases.audit(rid)
        event = next(e for e in audit if e.action == "decision_approve")
        attestation = event.details["attestation"]
        assert attestation["signature"] == body["signature"]["value"]
        assert attestation["statement"]["actor"] == event.actor == "sam.safety"
        assert attestation["statement"]["binding"]["artifact_sha256"] == status.spec.artifact.sha256
        assert event.details["key_id"] == body["signature"]["key_id"]

    async def test_missing_forged_replayed_refused(self, harness: Harness) -> None:
        rid = await started(harness)
        before = await harness.releases.status(rid)
        err = await refused(self.send(harness, rid, {"decider": "sam.safety", "role": "safety"}))
        assert err.rule == "signature_required"
        forged = self.sign(test_keys.person_key("sara.safety"), before, "sam.safety")
        err = await refused(self.send(harness, rid, forged))
        assert err.rule == "signature_wrong_signer"
        assert "belongs to sara.safety, not to sam.safety" in str(err)
        other = release_binding(before).model_copy(update={"subject_id": "another-release"})
        err = await refused(
            self.send(
                harness,
                rid,
                self.sign(test_keys.person_key("sam.safety"), before, "sam.safety", binding=other),
            )
        )
        assert err.rule == "signature_binding"
        assert (await harness.releases.status(rid)).audit_length == before.audit_length, "no trace"

        good = self.sign(test_keys.person_key("sam.safety"), before, "sam.safety")
        await self.send(harness, rid, good)
        err = await refused(self.send(harness, rid, good))
        assert err.rule in ("signature_replayed", "already_decided")

    async def test_stale_signature_refused(self, harness: Harness) -> None:
        rid = await started(harness)
        status = await harness.releases.status(rid)
        body = self.sign(
            test_keys.person_key("sam.safety"),
            status,
            "sam.safety",
            signed_at=datetime.now(UTC) - timedelta(hours=1),
        )
        err = await refused(self.send(harness, rid, body))
        assert err.rule == "signature_stale"


class TestOperators:
    """Holds stop progress and decisions; withdrawal ends the release and revokes its grants."""

    async def test_hold_blocks_decisions_until_resumed(self, harness: Harness) -> None:
        rid = await started(harness)
        result = await harness.releases.operate(
            rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="incident")
        )
        assert result.state is ReleaseState.HELD
        err = await refused(harness.approve(rid, "sam.safety", "safety"))
        assert err.rule == "release_held"
        err = await refused(
            harness.releases.operate(
                rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="again")
            )
        )
        assert err.rule == "already_held"
        await harness.releases.operate(
            rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="clear")
        )
        await harness.pass_internal_review(rid)
        await harness.until(rid, lambda s: s.stage != "internal_review")

    async def test_hold_with_until_resumes_by_itself(self, harness: Harness) -> None:
        rid = await started(harness)
        until = datetime.now(UTC) + timedelta(days=2)
        await harness.releases.operate(
            rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="audit", until=until)
        )
        await harness.skip(rid, 3)
        status = await harness.until(rid, lambda s: s.state is ReleaseState.ACTIVE)
        assert status.holds[0].released_by == "gatekeeper"

    async def test_withdraw_revokes_every_grant(self, harness: Harness) -> None:
        rid = await started(harness)
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 31)
        status = await harness.until(rid, lambda s: bool(s.grants))
        assert len(status.grants) == 3
        await harness.releases.operate(
            rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="flaw")
        )
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.WITHDRAWN
        assert all(g.status == "revoked" for g in outcome.status.grants)
        assert all(g.status == "revoked" for g in harness.adapters.registry.list_grants(rid))
        told = {
            line["recipient"]["id"]
            for line in harness.outbox_lines()
            if f"{rid}:withdrawn:" in line["key"]
        }
        assert {factories.SUBMITTER, factories.OPERATOR} <= told

    async def test_government_hold_cannot_be_resumed_by_operator(self, harness: Harness) -> None:
        from gatekeeper.models import GovernmentResponse, GovernmentResponseKind

        rid = await started(harness)
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 31)
        await harness.at_stage(rid, "vetted_partner_access")
        await harness.releases.respond(
            rid,
            GovernmentResponse(
                by=factories.LIAISON,
                kind=GovernmentResponseKind.DELAY_REQUESTED,
                delay_until=datetime.now(UTC) + timedelta(days=40),
            ),
        )
        err = await refused(
            harness.releases.operate(
                rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="go")
            )
        )
        assert err.rule == "government_hold"


class TestRawUpdateErrors:
    """Refusals reach any Temporal client as ApplicationError with the rule as its type."""

    async def test_rule_is_the_error_type(self, harness: Harness) -> None:
        rid = await started(harness)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await harness.handle(rid).execute_update(
                "approve",
                await test_keys.signed(
                    harness.releases, rid, "approve", {"decider": "ada.author", "role": "safety"}
                ),
            )
        assert isinstance(err.value.cause, ApplicationError)
        assert err.value.cause.type == "separation_of_duties"

"""Reviewers' decisions at a gate, judged by the review decider over a ledger in memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gatekeeper.ledger.checks import record_refusal
from gatekeeper.models import DecisionKind, ReleaseState
from gatekeeper.models.messages import DecisionRequest
from gatekeeper.rules import Refusal, Rule
from gatekeeper.stages import approval_gate
from tests import factories
from tests.ledger.build import T0, approve, at_gate, audit_actions, gate_settings, started


class TestApprovals:
    """Approvals count towards the gate's quorum; the gate closes only when nothing blocks it."""

    def test_one_approval_per_role_meets_the_quorum(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        for decider, role in factories.INTERNAL_REVIEW[:-1]:
            approve(deciders, decider, role)
            assert approval_gate.gate_blockers(ledger, "internal_review", gate_settings(ledger))
        message = approve(deciders, *factories.INTERNAL_REVIEW[-1])
        assert "quorum" in message
        assert approval_gate.gate_blockers(ledger, "internal_review", gate_settings(ledger)) == []
        assert audit_actions(ledger).count("decision_approve") == 3

    def test_a_person_without_the_role_is_refused_and_nothing_changes(self) -> None:
        deciders = at_gate(started())
        before = deciders.ledger.status.model_copy(deep=True)
        with pytest.raises(Refusal) as refused:
            approve(deciders, "lee.legal", "safety")
        assert refused.value.audited
        assert refused.value.rule is Rule.ROLE_NOT_HELD
        assert deciders.ledger.status == before

    def test_an_author_of_covered_evidence_may_not_approve_it(self) -> None:
        deciders = at_gate(started())
        with pytest.raises(Refusal) as refused:
            approve(deciders, factories.AUTHOR, "safety")
        assert refused.value.rule is Rule.SEPARATION_OF_DUTIES

    def test_a_decision_before_any_gate_is_refused(self) -> None:
        deciders = started()
        with pytest.raises(Refusal) as refused:
            approve(deciders, "sam.safety", "safety")
        assert refused.value.rule is Rule.NOT_A_GATE

    def test_a_refusal_is_recorded_in_the_audit_trail(self) -> None:
        deciders = at_gate(started())
        with pytest.raises(Refusal) as refused:
            approve(deciders, "lee.legal", "safety")
        record_refusal(deciders.ledger, refused.value, T0, "lee.legal", "approve", {"x": 1})
        last = deciders.ledger.chain.events[-1]
        assert last.action == "request_refused"
        assert last.details["rule"] == Rule.ROLE_NOT_HELD.value


class TestRejectAndChanges:
    """A rejection ends the release; a change request blocks the gate until an amend."""

    def test_reject_ends_the_release_and_refuses_further_decisions(self) -> None:
        deciders = at_gate(started())
        deciders.review.apply_decision(
            DecisionKind.REJECT, DecisionRequest(decider="sec.one", role="security"), T0
        )
        ledger = deciders.ledger
        assert ledger.status.state is ReleaseState.REJECTED
        assert ledger.take_notices()[-1].event.value == "rejected"
        with pytest.raises(Refusal) as refused:
            approve(deciders, "sam.safety", "safety", T0 + timedelta(minutes=1))
        assert refused.value.rule is Rule.RELEASE_TERMINAL

    def test_a_change_request_waits_for_the_submitter(self) -> None:
        deciders = at_gate(started())
        deciders.review.apply_decision(
            DecisionKind.REQUEST_CHANGES,
            DecisionRequest(decider="sec.one", role="security", comment="fix it"),
            T0,
        )
        ledger = deciders.ledger
        assert ledger.status.awaiting is not None
        assert ledger.status.awaiting.people == [factories.SUBMITTER]
        blockers = approval_gate.gate_blockers(ledger, "internal_review", gate_settings(ledger))
        assert "changes requested by sec.one" in blockers

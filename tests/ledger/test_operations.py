"""Operators, delegations and access orders, judged by their deciders over a ledger in memory."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gatekeeper.ledger.state import Ledger
from gatekeeper.models import OperatorRequest, ReleaseState
from gatekeeper.models.messages import (
    AccessRestoreRequest,
    AccessSuspensionRequest,
    DelegationRequest,
    DelegationRevocation,
)
from gatekeeper.rules import Refusal, Rule
from tests import factories
from tests.ledger.build import T0, approve, at_gate, audit_actions, started

OPS = factories.OPERATOR


def state(ledger: Ledger) -> ReleaseState:
    return ledger.status.state


class TestHolds:
    """A hold stops the pipeline until an operator resumes it or its time runs out."""

    def test_hold_and_resume(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        deciders.operators.apply_hold(OperatorRequest(by=OPS, reason="check the evals"), T0)
        assert state(ledger) is ReleaseState.HELD and ledger.is_blocked()
        with pytest.raises(Refusal) as refused:
            approve(deciders, "sam.safety", "safety")
        assert refused.value.rule is Rule.RELEASE_HELD
        deciders.operators.apply_resume(OperatorRequest(by=OPS, reason="fine"), T0)
        assert state(ledger) is ReleaseState.ACTIVE
        assert audit_actions(ledger)[-2:] == ["held", "resumed"]

    def test_a_hold_with_an_end_lifts_itself(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        until = T0 + timedelta(hours=2)
        deciders.operators.apply_hold(OperatorRequest(by=OPS, reason="wait", until=until), T0)
        assert ledger.next_hold_expiry() == until
        ledger.expire_holds(until - timedelta(seconds=1))
        assert ledger.is_held()
        ledger.expire_holds(until)
        assert not ledger.is_held() and ledger.next_hold_expiry() is None

    def test_only_operators_hold_and_nothing_to_resume_is_refused(self) -> None:
        deciders = at_gate(started())
        with pytest.raises(Refusal) as refused:
            deciders.operators.apply_hold(OperatorRequest(by="sam.safety", reason="x"), T0)
        assert refused.value.rule is Rule.ROLE_NOT_HELD
        with pytest.raises(Refusal) as refused:
            deciders.operators.apply_resume(OperatorRequest(by=OPS, reason="x"), T0)
        assert refused.value.rule is Rule.NOT_HELD

    def test_withdraw_ends_the_release(self) -> None:
        deciders = at_gate(started())
        message = deciders.operators.apply_withdraw(OperatorRequest(by=OPS, reason="pulled"), T0)
        assert "withdrawn" in message
        assert state(deciders.ledger) is ReleaseState.WITHDRAWN
        with pytest.raises(Refusal) as refused:
            deciders.operators.validate_operator(OperatorRequest(by=OPS, reason="again"), T0)
        assert refused.value.rule is Rule.RELEASE_TERMINAL


class TestDelegation:
    """A delegate decides in the delegator's name until the delegation ends or is revoked."""

    def test_a_delegate_approves_for_the_delegator_until_revoked(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        deciders.delegation.apply_delegation(
            DelegationRequest(
                by="sec.one", to="ed.exec", role="security", until=T0 + timedelta(days=1)
            ),
            T0,
        )
        approve(deciders, "ed.exec", "security")
        [decision] = ledger.status.gates["internal_review"].valid_approvals()
        assert (decision.person, decision.on_behalf_of) == ("ed.exec", "sec.one")
        message = deciders.delegation.apply_revocation(
            DelegationRevocation(by="sec.one", to="ed.exec", role="security"), T0
        )
        assert "no longer stand" in message
        assert ledger.status.gates["internal_review"].valid_approvals() == []

    def test_a_role_that_decides_no_gate_cannot_be_delegated(self) -> None:
        deciders = at_gate(started())
        with pytest.raises(Refusal) as refused:
            deciders.delegation.apply_delegation(
                DelegationRequest(
                    by=OPS, to="ed.exec", role="operator", until=T0 + timedelta(days=1)
                ),
                T0,
            )
        assert refused.value.rule is Rule.INVALID_DELEGATION


class TestAccessOrders:
    """An access order suspends the release's access; its lift restores it; re-deliveries
    change nothing."""

    def test_suspend_redeliver_and_restore(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        order = AccessSuspensionRequest(
            order_id="o-1", by="access-order-o-1", scope="everyone", reason="export control"
        )
        deciders.suspensions.apply_suspension(order, T0)
        assert state(ledger) is ReleaseState.SUSPENDED
        events = len(ledger.chain)
        assert "already suspends" in deciders.suspensions.apply_suspension(order, T0)
        assert len(ledger.chain) == events
        restore = AccessRestoreRequest(order_id="o-1", by=OPS, reason="lifted")
        deciders.suspensions.apply_restore(restore, T0)
        assert state(ledger) is ReleaseState.ACTIVE
        assert "already lifted" in deciders.suspensions.apply_restore(restore, T0)

    def test_restoring_an_unknown_order_is_refused(self) -> None:
        deciders = started()
        with pytest.raises(Refusal) as refused:
            deciders.suspensions.apply_restore(
                AccessRestoreRequest(order_id="o-9", by=OPS, reason="x"), T0
            )
        assert refused.value.rule is Rule.UNKNOWN_ORDER

    def test_a_restore_from_an_unknown_sender_is_refused(self) -> None:
        deciders = started()
        with pytest.raises(Refusal) as refused:
            deciders.suspensions.validate_restore(
                AccessRestoreRequest(order_id="o-1", by="mallory", reason="x"), T0
            )
        assert refused.value.rule is Rule.UNKNOWN_PERSON

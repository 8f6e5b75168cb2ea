"""The validator's trial: a request is tried on a copy of the ledger by a decider made over the
copy; the release's own ledger does not change, and what would change nothing is refused."""

from __future__ import annotations

import pytest

from gatekeeper.ledger.deciders import OperatorDecider, ReviewDecider
from gatekeeper.ledger.state import Ledger
from gatekeeper.models import DecisionKind, OperatorRequest
from gatekeeper.models.messages import DecisionRequest
from gatekeeper.rules import BUDGET_OF, REQUEST_BUDGETS, Refusal, Rule
from tests import factories
from tests.ledger.build import T0, at_gate, started


def approval(ledger: Ledger) -> str:
    return ReviewDecider(ledger).apply_decision(
        DecisionKind.APPROVE, DecisionRequest(decider="sam.safety", role="safety"), T0
    )


class TestTrial:
    """The trial runs on a copy: the ledger, its chain and its notices stay as they were."""

    def test_a_trial_changes_nothing(self) -> None:
        ledger = at_gate(started()).ledger
        before = ledger.status.model_copy(deep=True)
        events, notices = len(ledger.chain), len(ledger.notices)
        outcome = ledger.trial(approval)
        assert isinstance(outcome, tuple)
        changed, message = outcome
        assert changed and "approved internal_review" in message
        assert ledger.status == before
        assert (len(ledger.chain), len(ledger.notices)) == (events, notices)

    def test_the_screen_passes_a_change_and_refuses_a_repeat(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        ledger.screen("approve", "approve", 100, approval)
        approval(ledger)
        with pytest.raises(Refusal) as refused:
            ledger.screen("approve", "approve", 100, approval)
        assert refused.value.rule is Rule.ALREADY_DECIDED
        hold = OperatorRequest(by=factories.OPERATOR, reason="look again")
        deciders.operators.apply_hold(hold, T0)
        with pytest.raises(Refusal) as refused:
            ledger.screen(
                "hold", "hold", 100, lambda copy: OperatorDecider(copy).apply_hold(hold, T0)
            )
        assert refused.value.rule is Rule.ALREADY_HELD

    def test_past_its_budget_a_request_is_refused_unrecorded(self) -> None:
        ledger = at_gate(started()).ledger
        ledger.status.requests[BUDGET_OF["hold"]] = REQUEST_BUDGETS[BUDGET_OF["hold"]]
        hold = OperatorRequest(by=factories.OPERATOR, reason="again")
        with pytest.raises(Refusal) as refused:
            ledger.screen(
                "hold", "hold", 100, lambda copy: OperatorDecider(copy).apply_hold(hold, T0)
            )
        assert refused.value.rule is Rule.REQUEST_BUDGET_EXHAUSTED
        assert not ledger.is_held()

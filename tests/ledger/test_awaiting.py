"""What a release awaits, from whom, since when (issue 14's rules), on a ledger in memory.

The workflow switches these rules on under its ``awaiting-operator-and-since`` patch; a ledger of
a release started before keeps the old ones (``since`` reset whenever the sentence changed, no
operator added), which the last test pins.
"""

from __future__ import annotations

from datetime import timedelta

from gatekeeper.ledger.deciders import Deciders
from gatekeeper.models import OperatorRequest
from gatekeeper.stages import approval_gate
from tests import factories
from tests.ledger.build import T0, approve, at_gate, started


def gate(operators_awaited: bool = True) -> Deciders:
    deciders = started()
    deciders.ledger.operators_awaited = operators_awaited
    return at_gate(deciders)


def refresh(deciders: Deciders, minutes: int) -> None:
    ledger = deciders.ledger
    stage = ledger.policy.stage("internal_review")
    assert stage is not None and isinstance(stage, approval_gate.GateSettings)
    approval_gate.refresh_gate(ledger, "internal_review", stage, T0 + timedelta(minutes=minutes))


def hold(deciders: Deciders, minutes: int) -> None:
    deciders.operators.apply_hold(
        OperatorRequest(by=factories.OPERATOR, reason="board review"),
        T0 + timedelta(minutes=minutes),
    )


class TestSince:
    """The wait's "since" is when the parties awaited now were first awaited at the stage."""

    def test_an_approval_rewords_the_wait_without_restarting_it(self) -> None:
        d = gate()
        approve(d, "sam.safety", "safety", T0 + timedelta(minutes=5))
        refresh(d, 6)
        awaiting = d.ledger.status.awaiting
        assert awaiting is not None and "safety" not in awaiting.roles
        assert awaiting.since == T0

    def test_a_hold_is_the_operators_from_the_hold_then_the_reviewers_since_the_open(
        self,
    ) -> None:
        d = gate()
        hold(d, 10)
        refresh(d, 10)
        held = d.ledger.status.awaiting
        assert held is not None and held.roles == ["operator"]
        assert held.since == T0 + timedelta(minutes=10)
        d.ledger.release_holds(d.ledger.status.active_holds(), T0 + timedelta(minutes=20), "x", "y")
        refresh(d, 20)
        back = d.ledger.status.awaiting
        assert back is not None and back.roles == ["safety", "security", "legal"]
        assert back.since == T0

    def test_a_new_stage_starts_every_clock_again(self) -> None:
        d = gate()
        assert d.ledger.status.awaiting is not None
        d.ledger.finish_stage(d.ledger.policy.stages[0], T0 + timedelta(hours=1))
        d.ledger.await_("anything", T0 + timedelta(hours=2), roles=["safety"])
        assert d.ledger.status.awaiting is not None
        assert d.ledger.status.awaiting.since == T0 + timedelta(hours=2)

    def test_a_trial_leaves_the_clocks_alone(self) -> None:
        """The validator's preview runs on a copy: it never starts a party's clock."""
        d = gate()
        d.ledger.trial(lambda copy: copy.await_("x", T0 + timedelta(hours=1), people=["zed"]))
        assert "person:zed" not in d.ledger.first_awaited


class TestHeldAwaitsTheOperator:
    """Held, the release awaits ``operator`` first, whoever else must act, and says why."""

    def test_any_wait_while_held(self) -> None:
        d = gate()
        hold(d, 1)
        d.ledger.await_("the government testing window", T0, roles=["government_liaison"])
        awaiting = d.ledger.status.awaiting
        assert awaiting is not None
        assert awaiting.roles == ["operator", "government_liaison"]
        assert awaiting.what == (
            "the release to resume (board review); meanwhile the government testing window"
        )

    def test_not_before_the_patch(self) -> None:
        d = gate(operators_awaited=False)
        approve(d, "sam.safety", "safety", T0 + timedelta(minutes=5))
        refresh(d, 6)
        reworded = d.ledger.status.awaiting
        assert reworded is not None and reworded.since == T0 + timedelta(minutes=5), "reset"
        hold(d, 7)
        d.ledger.await_("the government testing window", T0, roles=["government_liaison"])
        awaiting = d.ledger.status.awaiting
        assert awaiting is not None and awaiting.roles == ["government_liaison"]

"""What an access order does to a release, judged by its suspension decider over a ledger in
memory: an order covering whole organisations suspends the release; a ``foreign_persons`` order
is recorded and enforced person by person by the registry, and the release goes on."""

from __future__ import annotations

from gatekeeper.ledger.deciders import Deciders
from gatekeeper.ledger.state import SYSTEM
from gatekeeper.ledger.suspensions import FOUND_ACTION
from gatekeeper.models import ReleaseState
from gatekeeper.models.io import OrderFound, OrdersInForce
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from tests.ledger.build import T0, at_gate, audit_actions, started

ACTOR = "access-order-o-1"


def order(scope: str, *exempt: str) -> AccessSuspensionRequest:
    return AccessSuspensionRequest(
        order_id="o-1", by=ACTOR, scope=scope, exempt_partners=list(exempt), reason="export rule"
    )


def lifted() -> AccessRestoreRequest:
    return AccessRestoreRequest(order_id="o-1", by=ACTOR, safeguards=["c2"], reason="review done")


def per_person_release() -> Deciders:
    deciders = at_gate(started())
    deciders.ledger.per_person_orders = True  # the workflow's per-person-orders patch
    return deciders


class TestForeignPersonsOrders:
    """A foreign_persons order never blocks the release; an everyone order still does."""

    def test_recorded_not_suspended(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        message = deciders.suspensions.apply_suspension(order("foreign_persons"), T0)
        assert message == "order o-1 recorded: checks deny the foreign persons it covers"
        assert ledger.status.state is ReleaseState.ACTIVE
        assert not ledger.is_blocked()
        assert ledger.status.active_suspensions() == []
        [recorded] = ledger.status.orders_in_force()
        assert recorded.per_person and recorded.scope == "foreign_persons"
        assert audit_actions(ledger)[-1] == "access_order_recorded"
        notice = ledger.take_notices()[-1]
        assert "goes on granting and launching" in notice.body

    def test_redelivery_exemptions_and_lift(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        suspensions = deciders.suspensions
        suspensions.apply_suspension(order("foreign_persons"), T0)
        events = len(ledger.chain)
        again = suspensions.apply_suspension(order("foreign_persons"), T0)
        assert again == "order o-1 already covers the release (enforced per person)"
        assert len(ledger.chain) == events
        exempted = suspensions.apply_suspension(order("foreign_persons", "brit-ai"), T0)
        assert exempted == "order o-1 exempts brit-ai"
        assert ledger.status.orders_in_force()[0].exempt_partners == ["brit-ai"]
        assert ledger.status.state is ReleaseState.ACTIVE
        restored = suspensions.apply_restore(lifted(), T0)
        assert restored == "order o-1 lifted (access checks enforced it per person)"
        assert ledger.status.orders_in_force() == []
        assert audit_actions(ledger)[-2:] == ["access_exemptions_changed", "access_restored"]

    def test_an_everyone_order_still_suspends(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        deciders.suspensions.apply_suspension(order("everyone"), T0)
        assert ledger.status.state is ReleaseState.SUSPENDED and ledger.is_blocked()
        deciders.suspensions.apply_suspension(
            order("gb").model_copy(update={"order_id": "o-2"}), T0
        )
        assert len(ledger.status.active_suspensions()) == 2

    def test_releases_started_before_the_patch_wait_as_they_did(self) -> None:
        deciders = at_gate(started())  # per_person_orders stays False: no marker in history
        deciders.suspensions.apply_suspension(order("foreign_persons"), T0)
        assert deciders.ledger.status.state is ReleaseState.SUSPENDED
        assert deciders.ledger.is_blocked()
        assert audit_actions(deciders.ledger)[-1] == "access_suspended"


def found(scope: str, *exempt: str, since_lifted: bool = False) -> OrdersInForce:
    """What ``find_orders_in_force`` answers for order o-1."""
    return OrdersInForce(
        orders=[
            OrderFound(suspend=order(scope, *exempt), lifted=lifted() if since_lifted else None)
        ]
    )


class TestOrdersTheReleaseFindsItself:
    """A release started after an order's sweeps records the order it reads from the registry as
    the order's own update would have, once; a lift it reads restores it; it never takes back an
    order it saw lifted."""

    def test_an_everyone_order_suspends_it(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        assert deciders.suspensions.record_found(found("everyone", "brit-ai"), T0) == ["o-1"]
        assert ledger.status.state is ReleaseState.SUSPENDED and ledger.is_blocked()
        [suspension] = ledger.status.active_suspensions()
        assert (suspension.by, suspension.exempt_partners) == (ACTOR, ["brit-ai"])
        event = ledger.chain.events[-1]
        assert (event.action, event.actor, event.details["per_person"]) == (
            FOUND_ACTION,
            SYSTEM,
            False,
        )
        assert "found the order in force itself" in ledger.take_notices()[-1].body
        events = len(ledger.chain)
        assert deciders.suspensions.record_found(found("everyone"), T0) == []  # held already
        assert len(ledger.chain) == events
        assert ledger.status.active_suspensions()[0].exempt_partners == ["brit-ai"]

    def test_a_lift_it_reads_restores_it_and_it_stays_lifted(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        deciders.suspensions.record_found(found("everyone"), T0)
        assert deciders.suspensions.record_found(found("everyone", since_lifted=True), T0) == []
        assert ledger.status.state is ReleaseState.ACTIVE and not ledger.is_blocked()
        assert ledger.status.suspensions[0].lifted_by == ACTOR
        assert audit_actions(ledger)[-1] == "access_restored"
        # A stale read that still shows the order active does not hold it again.
        assert deciders.suspensions.record_found(found("everyone"), T0) == []
        assert ledger.status.orders_in_force() == []

    def test_a_lifted_order_it_never_held_is_ignored(self) -> None:
        deciders = per_person_release()
        events = len(deciders.ledger.chain)
        assert deciders.suspensions.record_found(found("everyone", since_lifted=True), T0) == []
        assert deciders.ledger.status.suspensions == []
        assert len(deciders.ledger.chain) == events

    def test_a_foreign_persons_order_is_recorded_per_person(self) -> None:
        deciders = per_person_release()
        ledger = deciders.ledger
        assert deciders.suspensions.record_found(found("foreign_persons"), T0) == ["o-1"]
        assert ledger.status.state is ReleaseState.ACTIVE and not ledger.is_blocked()
        assert ledger.status.orders_in_force()[0].per_person
        assert audit_actions(ledger)[-1] == FOUND_ACTION
        assert "goes on granting and launching" in ledger.take_notices()[-1].body

"""What an access order does to a release, judged by its suspension decider over a ledger in
memory: an order covering whole organisations suspends the release; a ``foreign_persons`` order
is recorded and enforced person by person by the registry, and the release goes on."""

from __future__ import annotations

from gatekeeper.ledger.deciders import Deciders
from gatekeeper.models import ReleaseState
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

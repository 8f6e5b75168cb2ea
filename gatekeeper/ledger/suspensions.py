"""Access orders reaching a release: access suspended (with exempt partners) and restored.

An order whose scope covers whole organisations (``everyone``, a jurisdiction) suspends the
release: it waits before granting partner access and before launching until the order is
lifted. A ``foreign_persons`` order is enforced person by person by the registry's access checks
(a partner's US staff keep access, its foreign staff are denied), so the release records it and
goes on granting and launching (:attr:`~gatekeeper.models.status.Suspension.per_person`); only
releases started before the ``per-person-orders`` patch still wait for such an order.
"""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ids import ORDER_ACTOR_PREFIX
from gatekeeper.ledger.checks import not_terminal
from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.enums import NotificationEvent
from gatekeeper.models.io import OrdersInForce
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from gatekeeper.models.status import Suspension
from gatekeeper.rules import Rule, refuse

#: The order scope that access checks enforce person by person (see the module docstring).
FOREIGN_PERSONS = "foreign_persons"
#: The audit action of an order the release read from the registry itself (it started after the
#: order's sweeps): :meth:`SuspensionDecider.record_found`.
FOUND_ACTION = "access_order_found"


class SuspensionDecider:
    """What an access order (``AccessOrderWorkflow``) asks of a release."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- access orders ------------------------------------------------------------------------

    def validate_suspension(self, req: AccessSuspensionRequest, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        self._known_sender(req.by)

    def validate_restore(self, req: AccessRestoreRequest, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        self._known_sender(req.by)

    def _known_sender(self, by: str) -> None:
        """An access order's workflow (:data:`~gatekeeper.ids.ORDER_ACTOR_PREFIX`) or a person on
        the roster."""
        if not by.startswith(ORDER_ACTOR_PREFIX) and self.ledger.policy.person(by) is None:
            raise refuse(Rule.UNKNOWN_PERSON, f"unknown person '{by}'")

    def apply_suspension(
        self, req: AccessSuspensionRequest, now: datetime, *, found: bool = False
    ) -> str:
        """Record the order ``req`` names (or its new exempt list). ``found``: the release read
        the order from the registry itself (:meth:`record_found`), not from the order's update."""
        self.validate_suspension(req, now)
        for existing in self.ledger.status.orders_in_force():
            if existing.order_id == req.order_id:
                if sorted(existing.exempt_partners) == sorted(req.exempt_partners):
                    return f"order {req.order_id} already {_verb(existing)}"  # re-delivery
                return self._change_exemptions(existing, req, now)
        per_person = self.ledger.per_person_orders and req.scope == FOREIGN_PERSONS
        self.ledger.status.suspensions.append(
            Suspension(
                order_id=req.order_id,
                by=req.by,
                scope=req.scope,
                exempt_partners=req.exempt_partners,
                reason=req.reason,
                at=now,
                per_person=per_person,
            )
        )
        self.ledger.refresh_state()
        if found:
            details = req.model_dump(mode="json", exclude={"signature"})
            details["per_person"] = per_person
            event = self.ledger.audit(now, SYSTEM, FOUND_ACTION, details)
        elif per_person:
            event = self.ledger.audit(
                now, req.by, "access_order_recorded", req.model_dump(mode="json")
            )
        else:
            event = self.ledger.audit(now, req.by, "access_suspended", req.model_dump(mode="json"))
        if per_person:
            return self._record_per_person(req, event)
        self.ledger.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Access to {self.ledger.title} suspended ({req.scope})",
            f"Order {req.order_id} suspends access for {req.scope}: {req.reason}."
            + (
                " The release found the order in force itself (it started after the order "
                "reached the running releases) and waits to grant and launch until the lift."
                if found
                else ""
            ),
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        return f"access suspended by order {req.order_id}"

    def _record_per_person(self, req: AccessSuspensionRequest, event: AuditEvent) -> str:
        """A ``foreign_persons`` order: recorded, and the release goes on (checks enforce it)."""
        exempt = _names(req.exempt_partners, "", 3)
        self.ledger.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Order {req.order_id} covers foreign persons' access to {self.ledger.title}",
            f"Order {req.order_id}: {req.reason}. The release goes on granting and launching; "
            "access checks deny the persons the order covers (foreign persons, and anyone whose "
            "nationality is unknown)" + (f", except the staff of {exempt}" if exempt else "") + ".",
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        return f"order {req.order_id} recorded: checks deny the foreign persons it covers"

    def record_found(self, found: OrdersInForce, now: datetime) -> list[str]:
        """What the release read from the registry itself before granting or launching: each
        order covering its model that it does not hold yet is recorded as the order's own
        ``suspend_access`` would have been (audit :data:`FOUND_ACTION`), and each order it holds
        that the registry has lifted since is restored as the lift's ``restore_access`` would
        have restored it. Returns the ids of the orders newly recorded.

        An order the release holds already (reached by the order's sweep, or found before) is
        left as it is (the order's exemptions reach it through its own updates), and one it
        held and saw lifted is never recorded again."""
        if self.ledger.is_terminal():
            return []
        held = {s.order_id for s in self.ledger.status.suspensions}
        recorded: list[str] = []
        for order in found.orders:
            order_id = order.suspend.order_id
            if order.lifted is not None:
                if any(s.order_id == order_id for s in self.ledger.status.orders_in_force()):
                    self.apply_restore(order.lifted, now)
                continue
            if order_id in held:
                continue
            self.apply_suspension(order.suspend, now, found=True)
            held.add(order_id)
            recorded.append(order_id)
        return recorded

    def _change_exemptions(
        self, suspension: Suspension, req: AccessSuspensionRequest, now: datetime
    ) -> str:
        """The order exempted (or stopped exempting) partners; the suspension itself stays."""
        before = set(suspension.exempt_partners)
        suspension.exempt_partners = list(req.exempt_partners)
        added = sorted(set(req.exempt_partners) - before)
        removed = sorted(before - set(req.exempt_partners))
        event = self.ledger.audit(
            now,
            req.by,
            "access_exemptions_changed",
            {"order_id": req.order_id, "exempted": added, "no_longer_exempt": removed},
        )
        exempt = _names(req.exempt_partners, "nobody")
        still = (
            "is still enforced person by person on"
            if suspension.per_person
            else "still suspends access to"
        )
        self.ledger.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Order {req.order_id} now exempts {_names(req.exempt_partners, 'nobody', 3)}",
            f"Order {req.order_id} {still} {self.ledger.title} for {req.scope}; "
            f"exempt partners (and all their staff): {exempt}.",
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        return f"order {req.order_id} exempts {_names(req.exempt_partners, 'nobody', 3)}"

    def apply_restore(self, req: AccessRestoreRequest, now: datetime) -> str:
        not_terminal(self.ledger)
        active = [s for s in self.ledger.status.orders_in_force() if s.order_id == req.order_id]
        if not active:
            if any(s.order_id == req.order_id for s in self.ledger.status.suspensions):
                return f"order {req.order_id} was already lifted"  # idempotent re-delivery
            raise refuse(Rule.UNKNOWN_ORDER, f"order {req.order_id} does not suspend this release")
        for suspension in active:
            suspension.lifted_at = now
            suspension.lifted_by = req.by
            suspension.safeguards = list(req.safeguards)
        self.ledger.refresh_state()
        per_person = all(s.per_person for s in active)
        event = self.ledger.audit(now, req.by, "access_restored", req.model_dump(mode="json"))
        self.ledger.notify(
            NotificationEvent.ACCESS_RESTORED,
            event,
            f"Order {req.order_id} on {self.ledger.title} lifted"
            if per_person
            else f"Access to {self.ledger.title} restored",
            f"Order {req.order_id} was lifted: {req.reason}."
            + (f" Safeguards: {', '.join(req.safeguards)}." if req.safeguards else ""),
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        if per_person:
            return f"order {req.order_id} lifted (access checks enforced it per person)"
        return f"access restored (order {req.order_id} lifted)"


def _verb(suspension: Suspension) -> str:
    """What an order in force does to the release, for a re-delivery's answer."""
    return (
        "covers the release (enforced per person)" if suspension.per_person else "suspends access"
    )


def _names(items: list[str], empty: str, shown: int = 20) -> str:
    """``a, b, c`` or ``a, b, c and 497 more``: a message names a few, the audit keeps all."""
    if not items:
        return empty
    head = ", ".join(items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown} more"

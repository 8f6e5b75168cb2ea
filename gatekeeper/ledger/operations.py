"""Operators (hold, resume, withdraw), delegation, and access orders reaching a release."""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ids import ORDER_ACTOR_PREFIX
from gatekeeper.ledger.checks import LedgerChecks
from gatekeeper.ledger.state import SYSTEM
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import (
    NotificationEvent,
    ReleaseState,
    WellKnownRole,
)
from gatekeeper.models.messages import (
    AccessRestoreRequest,
    AccessSuspensionRequest,
    DelegationRequest,
    DelegationRevocation,
    OperatorRequest,
)
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.status import (
    Delegation,
    HoldRecord,
    Suspension,
)
from gatekeeper.rules import (
    MAX_ACTIVE_DELEGATIONS,
    Rule,
    gate_roles,
    refuse,
    refuse_audited,
    require_person,
    require_role,
)
from gatekeeper.stages import approval_gate
from gatekeeper.text import when

#: The longest a role may be delegated for.
MAX_DELEGATION = timedelta(days=90)


class OperatorDecisions(LedgerChecks):
    """Operator actions, delegations and access orders."""

    # --- operators ----------------------------------------------------------------------------

    def validate_operator(self, req: OperatorRequest, now: datetime) -> None:
        del now
        self._not_terminal()
        require_person(self.policy, req.by)

    def apply_hold(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.policy, req.by, WellKnownRole.OPERATOR.value)
        for hold in self.status.active_holds():
            if hold.kind == "operator":
                raise refuse_audited(
                    Rule.ALREADY_HELD,
                    f"already held by {hold.by} since {when(hold.at)}: {hold.reason}",
                )
        if req.until is not None and req.until <= now:
            raise refuse_audited(Rule.BAD_DATE, f"until {when(req.until)} is not in the future")
        self.status.holds.append(
            HoldRecord(kind="operator", by=req.by, reason=req.reason, at=now, until=req.until)
        )
        self.refresh_state()
        event = self.audit(
            now,
            req.by,
            "held",
            {"reason": req.reason, "until": when(req.until) if req.until else None},
        )
        self.notify(
            NotificationEvent.HELD,
            event,
            f"{self.title} is on hold",
            f"{req.by} put the release on hold: {req.reason}."
            + (f" It resumes by itself at {when(req.until)}." if req.until else ""),
            due=req.until,
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"held by {req.by}" + (f" until {when(req.until)}" if req.until else "")

    def apply_resume(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.policy, req.by, WellKnownRole.OPERATOR.value)
        holds = [h for h in self.status.active_holds() if h.kind != "government"]
        if not holds:
            government = [h for h in self.status.active_holds() if h.kind == "government"]
            if government:
                raise refuse_audited(
                    Rule.GOVERNMENT_HOLD,
                    f"held at the government's request until {when(government[0].until)}; it lifts "
                    "then, or when the liaison records clearance",
                )
            raise refuse_audited(Rule.NOT_HELD, f"release {self.status.release_id} is not held")
        return self.release_holds(holds, now, req.by, req.reason)

    def release_holds(self, holds: list[HoldRecord], now: datetime, by: str, reason: str) -> str:
        for hold in holds:
            hold.released_at = now
            hold.released_by = by
            if hold.kind == "deadline":
                self._extend_deadline(now)
        self.refresh_state()
        event = self.audit(
            now, by, "resumed", {"reason": reason, "holds": [h.reason for h in holds]}
        )
        self.notify(
            NotificationEvent.RESUMED,
            event,
            f"{self.title} resumed",
            f"{by} resumed the release: {reason}.",
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"resumed by {by}"

    def _extend_deadline(self, now: datetime) -> None:
        found = approval_gate.open_gate_for_decisions(self)
        if found is not None and found[1].deadline is not None:
            found[2].deadline_at = now + found[1].deadline

    def expire_holds(self, now: datetime) -> None:
        """Release holds whose ``until`` has passed (called by the workflow's clock)."""
        due = [h for h in self.status.active_holds() if h.until is not None and h.until <= now]
        if due:
            self.release_holds(due, now, SYSTEM, "the hold's time ran out")

    def next_hold_expiry(self) -> datetime | None:
        times = [h.until for h in self.status.active_holds() if h.until is not None]
        return min(times) if times else None

    def apply_withdraw(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.policy, req.by, WellKnownRole.OPERATOR.value)
        reason = f"withdrawn by {req.by}: {req.reason}"
        self.end(ReleaseState.WITHDRAWN, now, reason, req.by)
        self.notify_end(ReleaseState.WITHDRAWN, now, reason)
        return f"{self.status.release_id} withdrawn; every grant it made is being revoked"

    # --- delegation ---------------------------------------------------------------------------

    def validate_delegation(self, req: DelegationRequest, now: datetime) -> None:
        del now
        self._not_terminal()
        require_person(self.policy, req.by)
        require_person(self.policy, req.to)

    def apply_delegation(self, req: DelegationRequest, now: datetime) -> str:
        self.validate_delegation(req, now)
        require_role(self.policy, req.by, req.role)
        if req.to == req.by:
            raise refuse_audited(Rule.INVALID_DELEGATION, "a person cannot delegate to themselves")
        deciding = {
            role
            for stage in self.policy.stages
            if isinstance(stage, GateSettings)
            for role in gate_roles(stage)
        }
        if req.role not in deciding:
            raise refuse_audited(
                Rule.INVALID_DELEGATION,
                f"role '{req.role}' decides no gate; only gate roles can be delegated",
            )
        if req.until <= now or req.until > now + MAX_DELEGATION:
            raise refuse_audited(
                Rule.BAD_DATE,
                f"a delegation must end in the future and within {format_duration(MAX_DELEGATION)}",
            )
        active = [d for d in self.status.delegations if d.revoked_at is None and d.until > now]
        for item in active:
            if (item.by, item.to, item.role, item.until) == (req.by, req.to, req.role, req.until):
                raise refuse(
                    Rule.UNCHANGED,
                    f"{req.by} already delegated {req.role} to {req.to} until {when(req.until)}",
                )
        if len(active) >= MAX_ACTIVE_DELEGATIONS:
            raise refuse(
                Rule.INVALID_DELEGATION,
                f"release {self.status.release_id} already has {len(active)} active delegations "
                f"(at most {MAX_ACTIVE_DELEGATIONS})",
            )
        self.status.delegations.append(
            Delegation(
                by=req.by, to=req.to, role=req.role, at=now, until=req.until, reason=req.reason
            )
        )
        event = self.audit(
            now,
            req.by,
            "delegated",
            {"to": req.to, "role": req.role, "until": when(req.until), "reason": req.reason},
        )
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{req.by} delegated {req.role} to {req.to}",
            f"{req.to} may decide as {req.role} for {req.by} on {self.title} until {when(req.until)}.",
            concerned=[req.to, req.by],
        )
        return f"{req.by} delegated {req.role} to {req.to} until {when(req.until)}"

    def validate_revocation(self, req: DelegationRevocation, now: datetime) -> None:
        del now
        self._not_terminal()
        require_person(self.policy, req.by)
        require_person(self.policy, req.to)

    def apply_revocation(self, req: DelegationRevocation, now: datetime) -> str:
        """The delegator takes back ``role`` from ``to``: the delegation stops counting now, and
        the delegate's approvals in its name at the open gate no longer stand."""
        self.validate_revocation(req, now)
        active = [
            d
            for d in self.status.delegations
            if (d.by, d.to, d.role) == (req.by, req.to, req.role)
            and d.revoked_at is None
            and d.until > now
        ]
        if not active:
            raise refuse_audited(
                Rule.INVALID_DELEGATION,
                f"{req.by} has no active delegation of {req.role} to {req.to} to revoke",
            )
        for delegation in active:
            delegation.revoked_at = now
        invalidated: list[str] = []
        found = approval_gate.open_gate_for_decisions(self)
        if found is not None:
            for decision in found[2].decisions:
                if (
                    decision.valid
                    and decision.person == req.to
                    and decision.on_behalf_of == req.by
                    and decision.role == req.role
                ):
                    decision.valid = False
                    decision.invalidated_reason = (
                        f"{req.by} revoked the delegation of {req.role} at {when(now)}"
                    )
                    invalidated.append(f"{decision.kind.value} at {found[0].id}")
        event = self.audit(
            now,
            req.by,
            "delegation_revoked",
            {"to": req.to, "role": req.role, "reason": req.reason, "invalidated": invalidated},
        )
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{req.by} revoked the delegation of {req.role} to {req.to}",
            f"{req.to} may no longer decide as {req.role} for {req.by} on {self.title}"
            + (f"; no longer standing: {', '.join(invalidated)}" if invalidated else "")
            + ".",
            concerned=[req.to, req.by],
        )
        if found is not None:
            approval_gate.refresh_gate(self, found[0].id, found[1], now)
        return f"{req.by} revoked the delegation of {req.role} to {req.to}" + (
            f"; {len(invalidated)} decision(s) made with it no longer stand" if invalidated else ""
        )

    # --- access orders ------------------------------------------------------------------------

    def validate_suspension(self, req: AccessSuspensionRequest, now: datetime) -> None:
        del now
        self._not_terminal()
        if not req.by.startswith(ORDER_ACTOR_PREFIX) and self.policy.person(req.by) is None:
            raise refuse(Rule.UNKNOWN_PERSON, f"unknown person '{req.by}'")

    def apply_suspension(self, req: AccessSuspensionRequest, now: datetime) -> str:
        self.validate_suspension(req, now)
        for existing in self.status.active_suspensions():
            if existing.order_id == req.order_id:
                if sorted(existing.exempt_partners) == sorted(req.exempt_partners):
                    return f"order {req.order_id} already suspends access"  # re-delivery
                return self._change_exemptions(existing, req, now)
        self.status.suspensions.append(
            Suspension(
                order_id=req.order_id,
                by=req.by,
                scope=req.scope,
                exempt_partners=req.exempt_partners,
                reason=req.reason,
                at=now,
            )
        )
        self.refresh_state()
        event = self.audit(now, req.by, "access_suspended", req.model_dump(mode="json"))
        self.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Access to {self.title} suspended ({req.scope})",
            f"Order {req.order_id} suspends access for {req.scope}: {req.reason}.",
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"access suspended by order {req.order_id}"

    def _change_exemptions(
        self, suspension: Suspension, req: AccessSuspensionRequest, now: datetime
    ) -> str:
        """The order exempted (or stopped exempting) partners; the suspension itself stays."""
        before = set(suspension.exempt_partners)
        suspension.exempt_partners = list(req.exempt_partners)
        added = sorted(set(req.exempt_partners) - before)
        removed = sorted(before - set(req.exempt_partners))
        event = self.audit(
            now,
            req.by,
            "access_exemptions_changed",
            {"order_id": req.order_id, "exempted": added, "no_longer_exempt": removed},
        )
        exempt = _names(req.exempt_partners, "nobody")
        self.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Order {req.order_id} now exempts {_names(req.exempt_partners, 'nobody', 3)}",
            f"Order {req.order_id} still suspends access to {self.title} for {req.scope}; "
            f"exempt partners (and all their staff): {exempt}.",
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"order {req.order_id} exempts {_names(req.exempt_partners, 'nobody', 3)}"

    def apply_restore(self, req: AccessRestoreRequest, now: datetime) -> str:
        self._not_terminal()
        active = [s for s in self.status.active_suspensions() if s.order_id == req.order_id]
        if not active:
            if any(s.order_id == req.order_id for s in self.status.suspensions):
                return f"order {req.order_id} was already lifted"  # idempotent re-delivery
            raise refuse(Rule.UNKNOWN_ORDER, f"order {req.order_id} does not suspend this release")
        for suspension in active:
            suspension.lifted_at = now
            suspension.lifted_by = req.by
            suspension.safeguards = list(req.safeguards)
        self.refresh_state()
        event = self.audit(now, req.by, "access_restored", req.model_dump(mode="json"))
        self.notify(
            NotificationEvent.ACCESS_RESTORED,
            event,
            f"Access to {self.title} restored",
            f"Order {req.order_id} was lifted: {req.reason}."
            + (f" Safeguards: {', '.join(req.safeguards)}." if req.safeguards else ""),
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"access restored (order {req.order_id} lifted)"


def _names(items: list[str], empty: str, shown: int = 20) -> str:
    """``a, b, c`` or ``a, b, c and 497 more``: a message names a few, the audit keeps all."""
    if not items:
        return empty
    head = ", ".join(items[:shown])
    return head if len(items) <= shown else f"{head} and {len(items) - shown} more"

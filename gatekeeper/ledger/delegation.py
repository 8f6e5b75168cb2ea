"""Delegation: a reviewer lends a gate role to another roster member, and takes it back."""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.checks import not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import NotificationEvent
from gatekeeper.models.messages import DelegationRequest, DelegationRevocation
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.status import Delegation
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


class DelegationDecider:
    """Delegations of gate roles and their revocation."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- delegation ---------------------------------------------------------------------------

    def validate_delegation(self, req: DelegationRequest, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)
        require_person(self.ledger.policy, req.to)

    def apply_delegation(self, req: DelegationRequest, now: datetime) -> str:
        self.validate_delegation(req, now)
        require_role(self.ledger.policy, req.by, req.role)
        if req.to == req.by:
            raise refuse_audited(Rule.INVALID_DELEGATION, "a person cannot delegate to themselves")
        deciding = {
            role
            for stage in self.ledger.policy.stages
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
        active = [
            d for d in self.ledger.status.delegations if d.revoked_at is None and d.until > now
        ]
        for item in active:
            if (item.by, item.to, item.role, item.until) == (req.by, req.to, req.role, req.until):
                raise refuse(
                    Rule.UNCHANGED,
                    f"{req.by} already delegated {req.role} to {req.to} until {when(req.until)}",
                )
        if len(active) >= MAX_ACTIVE_DELEGATIONS:
            raise refuse(
                Rule.INVALID_DELEGATION,
                f"release {self.ledger.status.release_id} already has {len(active)} active delegations "
                f"(at most {MAX_ACTIVE_DELEGATIONS})",
            )
        self.ledger.status.delegations.append(
            Delegation(
                by=req.by, to=req.to, role=req.role, at=now, until=req.until, reason=req.reason
            )
        )
        event = self.ledger.audit(
            now,
            req.by,
            "delegated",
            {"to": req.to, "role": req.role, "until": when(req.until), "reason": req.reason},
        )
        self.ledger.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{req.by} delegated {req.role} to {req.to}",
            f"{req.to} may decide as {req.role} for {req.by} on {self.ledger.title} until {when(req.until)}.",
            concerned=[req.to, req.by],
        )
        return f"{req.by} delegated {req.role} to {req.to} until {when(req.until)}"

    def validate_revocation(self, req: DelegationRevocation, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)
        require_person(self.ledger.policy, req.to)

    def apply_revocation(self, req: DelegationRevocation, now: datetime) -> str:
        """The delegator takes back ``role`` from ``to``: the delegation stops counting now, and
        the delegate's approvals in its name at the open gate no longer stand."""
        self.validate_revocation(req, now)
        active = [
            d
            for d in self.ledger.status.delegations
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
        found = approval_gate.open_gate_for_decisions(self.ledger)
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
        event = self.ledger.audit(
            now,
            req.by,
            "delegation_revoked",
            {"to": req.to, "role": req.role, "reason": req.reason, "invalidated": invalidated},
        )
        self.ledger.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{req.by} revoked the delegation of {req.role} to {req.to}",
            f"{req.to} may no longer decide as {req.role} for {req.by} on {self.ledger.title}"
            + (f"; no longer standing: {', '.join(invalidated)}" if invalidated else "")
            + ".",
            concerned=[req.to, req.by],
        )
        if found is not None:
            approval_gate.refresh_gate(self.ledger, found[0].id, found[1], now)
        return f"{req.by} revoked the delegation of {req.role} to {req.to}" + (
            f"; {len(invalidated)} decision(s) made with it no longer stand" if invalidated else ""
        )

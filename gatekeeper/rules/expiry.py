"""Approval expiry: with ``approval_ttl``, an approval stops counting once it is that old."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.status import Decision, GateState
from gatekeeper.rules.base import GateRule


class ApprovalExpiry(GateRule):
    """An approval older than the gate's ``approval_ttl`` while the gate is open no longer
    counts: the ledger marks it invalid when the gate's expiry timer fires.

    It refuses nothing: an expired approval is not a decision, so its author may approve again
    (and is awaited again, since who is awaited counts only valid approvals). For feasibility it
    sets no one aside; the clock's own bounds are checked with the gate's other clocks.
    """

    rule = None

    def expired(self, decision: Decision, settings: GateSettings, now: datetime) -> bool:
        """Whether ``decision`` is a standing approval that expires at or before ``now``."""
        return (
            settings.approval_ttl is not None
            and decision.valid
            and decision.kind is DecisionKind.APPROVE
            and decision.at + settings.approval_ttl <= now
        )

    def reason(self, settings: GateSettings) -> str:
        """Why an expired approval no longer counts (its ``invalidated_reason``)."""
        age = format_duration(settings.approval_ttl) if settings.approval_ttl else "its ttl"
        return f"expired: older than {age} while the gate was open"

    def next_expiry(self, gate: GateState, settings: GateSettings) -> datetime | None:
        """When the next standing approval at ``gate`` expires, if the gate has an ``approval_ttl``."""
        if settings.approval_ttl is None:
            return None
        times = [d.at + settings.approval_ttl for d in gate.valid_approvals()]
        return min(times) if times else None

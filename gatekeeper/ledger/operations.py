"""Operators: hold, resume, withdraw."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.checks import not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.enums import (
    NotificationEvent,
    ReleaseState,
    WellKnownRole,
)
from gatekeeper.models.messages import OperatorRequest
from gatekeeper.models.status import HoldRecord
from gatekeeper.rules import (
    Rule,
    refuse_audited,
    require_person,
    require_role,
)
from gatekeeper.text import when


class OperatorDecider:
    """Operator actions: a hold, lifting it, withdrawing the release. (Holds that run out are
    lifted by the ledger itself: :meth:`~gatekeeper.ledger.state.Ledger.expire_holds`.)"""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- operators ----------------------------------------------------------------------------

    def validate_operator(self, req: OperatorRequest, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)

    def apply_hold(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.ledger.policy, req.by, WellKnownRole.OPERATOR.value)
        for hold in self.ledger.status.active_holds():
            if hold.kind == "operator":
                raise refuse_audited(
                    Rule.ALREADY_HELD,
                    f"already held by {hold.by} since {when(hold.at)}: {hold.reason}",
                )
        if req.until is not None and req.until <= now:
            raise refuse_audited(Rule.BAD_DATE, f"until {when(req.until)} is not in the future")
        self.ledger.status.holds.append(
            HoldRecord(kind="operator", by=req.by, reason=req.reason, at=now, until=req.until)
        )
        self.ledger.refresh_state()
        event = self.ledger.audit(
            now,
            req.by,
            "held",
            {"reason": req.reason, "until": when(req.until) if req.until else None},
        )
        self.ledger.notify(
            NotificationEvent.HELD,
            event,
            f"{self.ledger.title} is on hold",
            f"{req.by} put the release on hold: {req.reason}."
            + (f" It resumes by itself at {when(req.until)}." if req.until else ""),
            due=req.until,
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        return f"held by {req.by}" + (f" until {when(req.until)}" if req.until else "")

    def apply_resume(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.ledger.policy, req.by, WellKnownRole.OPERATOR.value)
        holds = [h for h in self.ledger.status.active_holds() if h.kind != "government"]
        if not holds:
            government = [h for h in self.ledger.status.active_holds() if h.kind == "government"]
            if government:
                raise refuse_audited(
                    Rule.GOVERNMENT_HOLD,
                    f"held at the government's request until {when(government[0].until)}; it lifts "
                    "then, or when the liaison records clearance",
                )
            raise refuse_audited(
                Rule.NOT_HELD, f"release {self.ledger.status.release_id} is not held"
            )
        return self.ledger.release_holds(holds, now, req.by, req.reason)

    def apply_withdraw(self, req: OperatorRequest, now: datetime) -> str:
        self.validate_operator(req, now)
        require_role(self.ledger.policy, req.by, WellKnownRole.OPERATOR.value)
        reason = f"withdrawn by {req.by}: {req.reason}"
        self.ledger.end(ReleaseState.WITHDRAWN, now, reason, req.by)
        self.ledger.notify_end(ReleaseState.WITHDRAWN, now, reason)
        return f"{self.ledger.status.release_id} withdrawn; every grant it made is being revoked"

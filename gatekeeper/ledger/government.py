"""What the government said, as the liaison records it: cleared, delay, concerns."""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.checks import attested, check_signature, not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import (
    GovernmentResponseKind,
    NotificationEvent,
    WellKnownRole,
)
from gatekeeper.models.messages import (
    GovernmentResponse,
)
from gatekeeper.models.status import (
    Concern,
    DelayRecord,
    HoldRecord,
)
from gatekeeper.rules import (
    Rule,
    refuse_audited,
    require_person,
    require_role,
)
from gatekeeper.stages import government_window
from gatekeeper.text import when

#: When no government window applies, how far a government delay may reach.
DEFAULT_MAX_DELAY = timedelta(days=30)


class GovernmentDecider:
    """The government liaison's records."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- government -------------------------------------------------------------------------

    def validate_government(self, req: GovernmentResponse, now: datetime) -> None:
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)
        check_signature(
            self.ledger,
            person_id=req.by,
            signature=req.signature,
            stage=self.ledger.status.stage,
            decision=f"government:{req.kind.value}",
            role=WellKnownRole.GOVERNMENT_LIAISON.value,
            subject=req.signed_subject(),
            now=now,
        )

    def apply_government(self, req: GovernmentResponse, now: datetime) -> str:
        self.validate_government(req, now)
        require_role(self.ledger.policy, req.by, WellKnownRole.GOVERNMENT_LIAISON.value)
        gov = self.ledger.status.government
        if gov.receipt is None:
            if government_window.window_stage(self.ledger) is None:
                raise refuse_audited(
                    Rule.NO_GOVERNMENT_STAGE,
                    f"this release has no government stage (covered_model {self.ledger.spec.covered_model.value})",
                )
            raise refuse_audited(
                Rule.NO_GOVERNMENT_STAGE,
                f"the release has not been submitted to the government yet (it is at {self.ledger.status.stage})",
            )
        if req.signature is not None:
            self.ledger.used_nonces.add(req.signature.nonce)
        kind = req.kind
        if kind is GovernmentResponseKind.CLEARED:
            return self._cleared(req, now)
        if kind is GovernmentResponseKind.DELAY_REQUESTED:
            return self._delay(req, now)
        if kind is GovernmentResponseKind.CONCERN_RAISED:
            return self._concern_raised(req, now)
        return self._concern_resolved(req, now)

    def _in_window(self) -> bool:
        gov = self.ledger.status.government
        return gov.window_opened_at is not None and gov.window_closed_at is None

    def _cleared(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.ledger.status.government
        if gov.cleared_at is not None:
            raise refuse_audited(
                Rule.ALREADY_CLEARED,
                f"the government already cleared this release at {when(gov.cleared_at)}",
            )
        gov.cleared_at = now
        gov.cleared_by = req.by
        event = self.ledger.audit(
            now, req.by, "government_cleared", attested({"reference": req.reference}, req.signature)
        )
        for hold in self.ledger.status.active_holds():
            if hold.kind == "government":
                hold.released_at = now
                hold.released_by = req.by
        self.ledger.refresh_state()
        stage = government_window.window_stage(self.ledger)
        early = self._in_window() and stage is not None and stage.allow_early_clearance
        self.ledger.notify(
            NotificationEvent.GOVERNMENT_CLEARED,
            event,
            f"Government cleared {self.ledger.title}",
            f"{req.by} recorded that the government cleared the release"
            + (f" ({req.reference})" if req.reference else "")
            + (". The testing window ends early." if early else "."),
            concerned=[self.ledger.spec.submitter],
        )
        if gov.open_concerns():
            return f"clearance recorded; {len(gov.open_concerns())} open concern(s) still block progress"
        return "clearance recorded" + ("; the window ends early" if early else "")

    def _delay(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.ledger.status.government
        until = req.delay_until
        assert until is not None  # the model guarantees it for delay_requested
        if until <= now:
            raise refuse_audited(Rule.BAD_DATE, f"delay_until {when(until)} is not in the future")
        stage = government_window.window_stage(self.ledger)
        max_delay = stage.max_delay if stage else DEFAULT_MAX_DELAY
        if self._in_window() and gov.window_original_ends_at is not None:
            limit = gov.window_original_ends_at + max_delay
        else:
            limit = now + max_delay
        if until > limit:
            raise refuse_audited(
                Rule.DELAY_TOO_LONG,
                f"delay until {when(until)} is past the policy's maximum ({when(limit)}, "
                f"max_delay {format_duration(max_delay)})",
            )
        if self._in_window():
            effect = "window_extended"
            if gov.window_ends_at is None or until > gov.window_ends_at:
                gov.window_ends_at = until
        else:
            effect = "release_held"
            self.ledger.status.holds.append(
                HoldRecord(
                    kind="government",
                    by=req.by,
                    reason=f"government asked to delay until {when(until)}",
                    at=now,
                    until=until,
                )
            )
            self.ledger.refresh_state()
        gov.delays.append(
            DelayRecord(
                requested_at=now, by=req.by, until=until, reference=req.reference, effect=effect
            )
        )
        event = self.ledger.audit(
            now,
            req.by,
            "government_delay",
            attested(
                {"until": when(until), "effect": effect, "reference": req.reference},
                req.signature,
            ),
        )
        self.ledger.notify(
            NotificationEvent.WINDOW_EXTENDED
            if effect == "window_extended"
            else NotificationEvent.HELD,
            event,
            f"Government asked to delay {self.ledger.title}",
            f"The government asked to delay until {when(until)}; "
            + (
                "the testing window now ends then."
                if effect == "window_extended"
                else "the release is held until then."
            ),
            due=until,
            concerned=[self.ledger.spec.submitter],
            roles=["operator"],
        )
        if self.ledger.status.stage and self._in_window() and stage is not None:
            government_window.await_window(self.ledger, stage, now)
        return (
            f"delay recorded: the window now ends {when(gov.window_ends_at)}"
            if effect == "window_extended"
            else f"delay recorded: the release is held until {when(until)}"
        )

    def _concern_raised(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.ledger.status.government
        concern = Concern(
            id=f"c{len(gov.concerns) + 1}",
            raised_at=now,
            raised_by=req.by,
            text=req.concern,
            reference=req.reference,
        )
        gov.concerns.append(concern)
        event = self.ledger.audit(
            now,
            req.by,
            "concern_raised",
            attested(
                {"concern": concern.id, "text": req.concern, "reference": req.reference},
                req.signature,
            ),
        )
        self.ledger.notify(
            NotificationEvent.CONCERN_RAISED,
            event,
            f"Government concern {concern.id} on {self.ledger.title}",
            f"The government raised a concern: {req.concern}. The release cannot leave the "
            "testing window or launch until it is resolved.",
            action_needed="Address the concern with the government; the liaison records its resolution.",
            concerned=[self.ledger.spec.submitter],
            roles=["security", "executive"],
        )
        stage = government_window.window_stage(self.ledger)
        if self._in_window() and stage is not None:
            government_window.await_window(self.ledger, stage, now)
        return f"concern {concern.id} recorded; it blocks the window's end and the launch"

    def _concern_resolved(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.ledger.status.government
        open_ = gov.open_concerns()
        if req.concern_id is not None:
            concern = next((c for c in open_ if c.id == req.concern_id), None)
            if concern is None:
                ids = ", ".join(c.id for c in open_) or "none"
                raise refuse_audited(
                    Rule.UNKNOWN_CONCERN, f"no open concern '{req.concern_id}' (open: {ids})"
                )
        elif len(open_) == 1:
            concern = open_[0]
        else:
            ids = ", ".join(c.id for c in open_) or "none"
            raise refuse_audited(
                Rule.UNKNOWN_CONCERN, f"say which concern is resolved (open: {ids})"
            )
        concern.resolved_at = now
        concern.resolved_by = req.by
        event = self.ledger.audit(
            now,
            req.by,
            "concern_resolved",
            attested({"concern": concern.id, "reference": req.reference}, req.signature),
        )
        self.ledger.notify(
            NotificationEvent.CONCERN_RESOLVED,
            event,
            f"Government concern {concern.id} resolved",
            f"{req.by} recorded that concern {concern.id} ({concern.text}) is resolved.",
            concerned=[self.ledger.spec.submitter],
        )
        stage = government_window.window_stage(self.ledger)
        if self._in_window() and stage is not None:
            government_window.await_window(self.ledger, stage, now)
        return f"concern {concern.id} resolved"

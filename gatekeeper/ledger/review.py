"""Reviewers at approval gates: approve, reject, request changes."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.checks import check_signature, not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.enums import (
    DecisionKind,
    NotificationEvent,
    ReleaseState,
)
from gatekeeper.models.messages import (
    DecisionRequest,
    DecisionSignature,
)
from gatekeeper.models.status import Decision
from gatekeeper.rules import (
    Rule,
    authorize_decision,
    covered_digests,
    refuse_audited,
    require_person,
    resolve_acting,
)
from gatekeeper.stages import approval_gate
from gatekeeper.statements import RequestSignature


class ReviewDecider:
    """Decisions at approval gates (and at an access grant's gate)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- approve / reject / request changes -------------------------------------------------

    def validate_decision(self, kind: DecisionKind, req: DecisionRequest, now: datetime) -> None:
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.decider)
        check_signature(
            self.ledger,
            person_id=req.decider,
            signature=req.signature,
            stage=req.stage,
            decision=kind.value,
            role=req.role,
            subject="",
            now=now,
        )

    def apply_decision(self, kind: DecisionKind, req: DecisionRequest, now: datetime) -> str:
        self.validate_decision(kind, req, now)
        current = self.ledger.status.stage
        if req.stage is not None and req.stage != current:
            raise refuse_audited(
                Rule.WRONG_STAGE,
                f"{req.stage} is not the current stage (the release is at {current or 'its start'})",
            )
        found = approval_gate.open_gate_for_decisions(self.ledger)
        if found is None:
            waiting = (
                self.ledger.status.awaiting.what if self.ledger.status.awaiting else "its next step"
            )
            raise refuse_audited(
                Rule.NOT_A_GATE,
                f"{current or 'the release'} takes no decisions now; it is waiting for {waiting}",
            )
        stage, settings, gate = found
        if self.ledger.is_held():
            reasons = "; ".join(h.reason for h in self.ledger.status.active_holds())
            raise refuse_audited(
                Rule.RELEASE_HELD, f"the release is held ({reasons}); decide after it resumes"
            )
        acting = resolve_acting(
            self.ledger.policy, self.ledger.status.delegations, req.decider, req.role, now
        )
        authorize_decision(
            policy=self.ledger.policy,
            status=self.ledger.status,
            gate_settings=settings,
            gate=gate,
            kind=kind,
            acting=acting,
        )
        if req.signature is not None:
            self.ledger.used_nonces.add(req.signature.nonce)
        decision = Decision(
            kind=kind,
            person=acting.person,
            role=acting.role,
            on_behalf_of=acting.on_behalf_of,
            at=now,
            comment=req.comment,
            covered=covered_digests(settings, self.ledger.spec),
            signature=req.signature if isinstance(req.signature, DecisionSignature) else None,
            key_id=req.signature.key_id if isinstance(req.signature, RequestSignature) else None,
        )
        for previous in gate.decisions:
            same = {previous.person, previous.on_behalf_of or previous.person} & acting.identities
            if not same or not previous.valid:
                continue
            if (
                kind is DecisionKind.APPROVE
                and previous.kind is DecisionKind.REQUEST_CHANGES
                and previous.addressed_at is None
            ):
                previous.addressed_at = now  # approving withdraws one's own change request
            if kind is DecisionKind.REQUEST_CHANGES and previous.kind is DecisionKind.APPROVE:
                previous.valid = False
                previous.invalidated_reason = "withdrawn: the reviewer asked for changes"
        gate.decisions.append(decision)
        details = decision.model_dump(
            mode="json", exclude={"valid", "invalidated_reason", "addressed_at"}
        )
        event = self.ledger.audit(
            now, acting.person, f"decision_{kind.value}", details, stage=stage.id
        )
        who = acting.person + (f" (for {acting.on_behalf_of})" if acting.on_behalf_of else "")
        if kind is DecisionKind.REJECT:
            reason = f"rejected at {stage.id} by {who}" + (
                f": {req.comment}" if req.comment else ""
            )
            self.ledger.end(ReleaseState.REJECTED, now, reason, acting.person)
            self.ledger.notify_end(ReleaseState.REJECTED, now, reason)
            return f"{who} rejected {self.ledger.status.release_id} at {stage.id}; the release is rejected"
        if kind is DecisionKind.REQUEST_CHANGES:
            self.ledger.notify(
                NotificationEvent.CHANGES_REQUESTED,
                event,
                f"Changes requested at {stage.id}",
                f"{who} asked for changes to {self.ledger.title} at {stage.id}: {req.comment or '(no comment)'}",
                action_needed=f"Amend the release: `gatekeeper release amend {self.ledger.status.release_id} ...`",
                concerned=[self.ledger.spec.submitter],
            )
            approval_gate.refresh_gate(self.ledger, stage.id, settings, now)
            return f"{who} asked for changes at {stage.id}; the gate waits for an amend"
        progress = approval_gate.progress(self.ledger, stage.id, settings)
        self.ledger.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{who} approved {stage.id}",
            f"{who} approved {self.ledger.title} at {stage.id} as {acting.role}. Quorum: {progress.describe()}.",
            concerned=[self.ledger.spec.submitter],
        )
        approval_gate.refresh_gate(self.ledger, stage.id, settings, now)
        return f"{who} approved {stage.id} as {acting.role}; quorum {progress.describe()}"

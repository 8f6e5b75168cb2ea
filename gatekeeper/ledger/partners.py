"""Partners the government approves one by one (``government_approves_partners``)."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.checks import attested, check_signature, not_terminal
from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.enums import (
    NotificationEvent,
    WellKnownRole,
)
from gatekeeper.models.partners import (
    EligiblePartners,
    PartnerApprovalRequest,
    PartnerList,
    PartnerListEntry,
)
from gatekeeper.models.policy import AccessGrantStage
from gatekeeper.rules import (
    Rule,
    refuse_audited,
    require_person,
    require_role,
)


class PartnerListDecider:
    """The partner list proposed to the government, decided entry by entry: the liaison's
    decisions, and the access grant stage's steps around them (propose, grant, settle)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def partner_lists(self) -> dict[str, PartnerList]:
        """Partner lists proposed to the government, by access_grant stage id (kept in status)."""
        return {p.stage: p for p in self.ledger.status.partner_lists}

    # --- partners the government approves one by one ---------------------------------------

    def propose_partners(
        self, stage: AccessGrantStage, eligible: EligiblePartners, now: datetime
    ) -> PartnerList:
        """Propose the eligible partners to the government; none is granted until approved."""
        partners = PartnerList(
            stage=stage.id,
            proposed_at=now,
            entries=[PartnerListEntry(candidate=c) for c in eligible.candidates],
        )
        self.ledger.status.partner_lists = [
            *(p for p in self.ledger.status.partner_lists if p.stage != stage.id),
            partners,
        ]
        ids = [c.partner_id for c in eligible.candidates]
        event = self.ledger.audit(
            now,
            SYSTEM,
            "partners_proposed",
            {"partners": ids, "skipped": eligible.skipped},
            stage=stage.id,
        )
        liaison = WellKnownRole.GOVERNMENT_LIAISON.value
        self.ledger.notify(
            NotificationEvent.GATE_WAITING,
            event,
            f"Partner list for {self.ledger.title} awaits the government",
            f"{len(ids)} partner(s) are proposed for early access to {self.ledger.title}: "
            f"{', '.join(ids) or 'none'}. Each is granted only once the government approves it.",
            action_needed="Record the government's decision on each partner (approve_partners).",
            roles=[liaison],
            concerned=[self.ledger.spec.submitter],
        )
        self.await_partner_list(stage.id, now)
        return partners

    def await_partner_list(self, stage_id: str, now: datetime) -> None:
        partners = self.partner_lists[stage_id]
        undecided = partners.undecided()
        if partners.to_grant() and self.ledger.is_blocked():
            reasons = [h.reason for h in self.ledger.status.active_holds()]
            reasons += [f"order {s.order_id}" for s in self.ledger.status.active_suspensions()]
            self.ledger.await_(
                f"the release to resume to grant approved partners ({'; '.join(reasons)})",
                now,
                roles=[WellKnownRole.OPERATOR.value],
            )
            return
        liaison = WellKnownRole.GOVERNMENT_LIAISON.value
        shown = ", ".join(undecided[:10]) + (
            f" and {len(undecided) - 10} more" if len(undecided) > 10 else ""
        )
        self.ledger.await_(
            f"the government's decision on partner(s) {shown} at {stage_id}",
            now,
            roles=[liaison],
            people=[p.id for p in self.ledger.policy.people_with_role(liaison)],
        )

    def validate_partner_approval(self, req: PartnerApprovalRequest, now: datetime) -> None:
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)
        check_signature(
            self.ledger,
            person_id=req.by,
            signature=req.signature,
            stage=self.ledger.status.stage,
            decision=f"partners:{req.decision}",
            role=WellKnownRole.GOVERNMENT_LIAISON.value,
            subject=req.signed_subject(),
            now=now,
        )

    def apply_partner_approval(self, req: PartnerApprovalRequest, now: datetime) -> str:
        """Record the government's decision on entries of the current stage's partner list."""
        self.validate_partner_approval(req, now)
        require_role(self.ledger.policy, req.by, WellKnownRole.GOVERNMENT_LIAISON.value)
        stage_id = self.ledger.status.stage or ""
        partners = self.partner_lists.get(stage_id)
        if partners is None or partners.settled_at is not None:
            raise refuse_audited(
                Rule.NOT_A_GATE,
                f"no partner list awaits the government's decision at {stage_id or 'this point'}",
            )
        unknown = [p for p in req.partners if partners.entry(p) is None]
        if unknown:
            proposed = ", ".join(e.candidate.partner_id for e in partners.entries) or "none"
            raise refuse_audited(
                Rule.PARTNER_NOT_PROPOSED,
                f"{', '.join(unknown)} not on the proposed partner list (proposed: {proposed})",
            )
        entries = [e for p in req.partners if (e := partners.entry(p)) is not None]
        changed = [e for e in entries if e.decision is not None and e.decision != req.decision]
        if changed:
            raise refuse_audited(
                Rule.ALREADY_DECIDED,
                "already decided: "
                + ", ".join(f"{e.candidate.partner_id} ({e.decision})" for e in changed),
            )
        fresh = [e for e in entries if e.decision is None]
        past = "approved" if req.decision == "approve" else "denied"
        if req.signature is not None:
            self.ledger.used_nonces.add(req.signature.nonce)
        if not fresh:
            return f"already recorded: {', '.join(req.partners)} {past}"
        for entry in fresh:
            entry.decision = req.decision
            entry.decided_by = req.by
            entry.decided_at = now
            entry.reason = req.reason
            entry.reference = req.reference
        ids = [e.candidate.partner_id for e in fresh]
        event = self.ledger.audit(
            now,
            req.by,
            f"partners_{past}",
            attested(
                {"partners": ids, "reason": req.reason, "reference": req.reference},
                req.signature,
            ),
        )
        left = len(partners.undecided())
        self.ledger.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"Government {past} {len(ids)} partner(s)",
            f"{req.by} recorded that the government {past} {', '.join(ids)} for early "
            f"access to {self.ledger.title}. {left} partner(s) still await a decision.",
            concerned=[self.ledger.spec.submitter],
        )
        self.await_partner_list(stage_id, now)
        return f"{', '.join(ids)} {past}; {left} partner(s) still undecided"

    def partners_granted(self, stage_id: str, partner_ids: list[str]) -> None:
        for partner_id in partner_ids:
            entry = self.partner_lists[stage_id].entry(partner_id)
            if entry is not None:
                entry.granted = True

    def settle_partner_list(self, stage_id: str, now: datetime) -> None:
        """Every entry is decided and every approved partner granted: the list is settled."""
        partners = self.partner_lists[stage_id]
        partners.settled_at = now
        event = self.ledger.audit(
            now,
            SYSTEM,
            "partner_list_settled",
            {"approved": partners.approved(), "denied": partners.denied()},
            stage=stage_id,
        )
        self.ledger.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"Partner list for {self.ledger.title} settled",
            f"The government approved {len(partners.approved())} partner(s) "
            f"({', '.join(partners.approved()) or 'none'}) and denied "
            f"{len(partners.denied())}. The minimum partner period starts now.",
            concerned=[self.ledger.spec.submitter],
        )

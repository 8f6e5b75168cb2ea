"""Decisions on a release: reviewers, the submitter, the government liaison, operators.

Each request has a ``validate_*`` method (run by the update validator: malformed or
unauthenticated requests are refused without a trace) and an ``apply_*`` method (run by the
handler: it re-checks, since state may have moved between the two, then either applies the
change or raises an *audited* :class:`~gatekeeper.rules.Refusal` that the workflow records).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper import signing
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import (
    DecisionKind,
    GovernmentResponseKind,
    NotificationEvent,
    ReleaseState,
    WellKnownRole,
)
from gatekeeper.models.messages import (
    AccessRestoreRequest,
    AccessSuspensionRequest,
    AmendRequest,
    DecisionRequest,
    DecisionSignature,
    DelegationRequest,
    GovernmentResponse,
    OperatorRequest,
)
from gatekeeper.models.partners import (
    EligiblePartners,
    PartnerApprovalRequest,
    PartnerList,
    PartnerListEntry,
)
from gatekeeper.models.policy import AccessGrantStage, GateSettings
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import (
    Concern,
    Decision,
    DelayRecord,
    Delegation,
    HoldRecord,
    Suspension,
)
from gatekeeper.rules import (
    Refusal,
    Rule,
    authorize_decision,
    covered_digests,
    gate_roles,
    refuse,
    refuse_audited,
    require_person,
    require_role,
    resolve_acting,
)
from workflows.ledger import SYSTEM, LedgerCore
from workflows.notices import when

#: How far ahead a signature's time may be (clock skew between a laptop and the server).
SIGNATURE_SKEW = timedelta(minutes=5)
#: The longest a role may be delegated for.
MAX_DELEGATION = timedelta(days=90)
#: When no government window applies, how far a government delay may reach.
DEFAULT_MAX_DELAY = timedelta(days=30)


class ReleaseLedger(LedgerCore):
    """The complete ledger: state (from :class:`LedgerCore`) plus every decision path."""

    @property
    def partner_lists(self) -> dict[str, PartnerList]:
        """Partner lists proposed to the government, by access_grant stage id (kept in status)."""
        return {p.stage: p for p in self.status.partner_lists}

    # --- shared checks --------------------------------------------------------------------

    def _not_terminal(self) -> None:
        if self.is_terminal():
            raise refuse(
                Rule.RELEASE_TERMINAL,
                f"release {self.status.release_id} is {self.status.state.value}; "
                "it accepts no further decisions",
            )

    def _check_signature(
        self,
        *,
        person_id: str,
        signature: DecisionSignature | None,
        stage: str | None,
        decision: str,
        role: str,
        subject: str,
        now: datetime,
    ) -> None:
        if signature is None:
            if self.policy.require_signed_decisions:
                raise refuse(
                    Rule.SIGNATURE_REQUIRED,
                    f"policy {self.policy.policy_id} requires signed decisions; sign with "
                    f"`gatekeeper keys generate --as {person_id}` and the CLI's --key",
                )
            return
        person = require_person(self.policy, person_id)
        if not person.public_key:
            raise refuse(Rule.SIGNATURE_INVALID, f"{person_id} has no public key on the roster")
        if stage is None:
            raise refuse(Rule.SIGNATURE_INVALID, "a signed decision must name its stage")
        if signature.artifact_sha256 != self.spec.artifact.sha256:
            raise refuse(
                Rule.SIGNATURE_INVALID,
                f"the signature is for artifact {signature.artifact_sha256[:12]}…, the release's "
                f"artifact is {self.spec.artifact.sha256[:12]}…",
            )
        age = now - signature.signed_at
        if age > self.policy.signature_max_age or -age > SIGNATURE_SKEW:
            raise refuse(
                Rule.SIGNATURE_STALE,
                f"the signature was made at {when(signature.signed_at)}; signatures are accepted "
                f"for {int(self.policy.signature_max_age.total_seconds() // 60)} minutes",
            )
        if signature.nonce in self.used_nonces:
            raise refuse(
                Rule.SIGNATURE_REPLAYED, "this signature was already used (replay refused)"
            )
        payload = signing.decision_payload(
            release_id=self.status.release_id,
            stage=stage,
            decision=decision,
            decider=person_id,
            role=role,
            signed_at=signature.signed_at,
            nonce=signature.nonce,
            artifact_sha256=signature.artifact_sha256,
            subject=subject,
        )
        if not signing.verify(person.public_key, payload, signature.value):
            raise refuse(
                Rule.SIGNATURE_INVALID,
                f"the signature does not verify against {person_id}'s roster key",
            )

    def refused(
        self, refusal: Refusal, now: datetime, actor: str, request: str, body: object
    ) -> None:
        """Record an audited refusal: the attempt and the rule it broke."""
        details = body if isinstance(body, dict) else {}
        self.audit(
            now,
            actor,
            "request_refused",
            {
                "request": request,
                "rule": refusal.rule.value,
                "reason": refusal.message,
                "payload": details,
            },
        )

    # --- approve / reject / request changes -------------------------------------------------

    def validate_decision(self, kind: DecisionKind, req: DecisionRequest, now: datetime) -> None:
        self._not_terminal()
        require_person(self.policy, req.decider)
        self._check_signature(
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
        current = self.status.stage
        if req.stage is not None and req.stage != current:
            raise refuse_audited(
                Rule.WRONG_STAGE,
                f"{req.stage} is not the current stage (the release is at {current or 'its start'})",
            )
        found = self.open_gate_for_decisions()
        if found is None:
            waiting = self.status.awaiting.what if self.status.awaiting else "its next step"
            raise refuse_audited(
                Rule.NOT_A_GATE,
                f"{current or 'the release'} takes no decisions now; it is waiting for {waiting}",
            )
        stage, settings, gate = found
        if self.is_held():
            reasons = "; ".join(h.reason for h in self.status.active_holds())
            raise refuse_audited(
                Rule.RELEASE_HELD, f"the release is held ({reasons}); decide after it resumes"
            )
        acting = resolve_acting(self.policy, self.status.delegations, req.decider, req.role, now)
        authorize_decision(
            policy=self.policy,
            status=self.status,
            gate_settings=settings,
            gate=gate,
            kind=kind,
            acting=acting,
        )
        if req.signature is not None:
            self.used_nonces.add(req.signature.nonce)
        decision = Decision(
            kind=kind,
            person=acting.person,
            role=acting.role,
            on_behalf_of=acting.on_behalf_of,
            at=now,
            comment=req.comment,
            covered=covered_digests(settings, self.spec),
            signature=req.signature,
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
        event = self.audit(now, acting.person, f"decision_{kind.value}", details, stage=stage.id)
        who = acting.person + (f" (for {acting.on_behalf_of})" if acting.on_behalf_of else "")
        if kind is DecisionKind.REJECT:
            reason = f"rejected at {stage.id} by {who}" + (
                f": {req.comment}" if req.comment else ""
            )
            self.end(ReleaseState.REJECTED, now, reason, acting.person)
            self._notify_end(ReleaseState.REJECTED, now, reason)
            return f"{who} rejected {self.status.release_id} at {stage.id}; the release is rejected"
        if kind is DecisionKind.REQUEST_CHANGES:
            self.notify(
                NotificationEvent.CHANGES_REQUESTED,
                event,
                f"Changes requested at {stage.id}",
                f"{who} asked for changes to {self.title} at {stage.id}: {req.comment or '(no comment)'}",
                action_needed=f"Amend the release: `gatekeeper release amend {self.status.release_id} ...`",
                concerned=[self.spec.submitter],
            )
            self.refresh_gate(stage.id, settings, now)
            return f"{who} asked for changes at {stage.id}; the gate waits for an amend"
        progress = self.progress(stage.id, settings)
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{who} approved {stage.id}",
            f"{who} approved {self.title} at {stage.id} as {acting.role}. Quorum: {progress.describe()}.",
            concerned=[self.spec.submitter],
        )
        self.refresh_gate(stage.id, settings, now)
        return f"{who} approved {stage.id} as {acting.role}; quorum {progress.describe()}"

    # --- amend ---------------------------------------------------------------------------------

    def validate_amend(self, req: AmendRequest, now: datetime) -> None:
        del now
        self._not_terminal()
        require_person(self.policy, req.by)

    def apply_amend(self, req: AmendRequest, now: datetime) -> tuple[str, bool]:
        """Apply an amend. Returns (message, whether evidence must be verified again)."""
        self.validate_amend(req, now)
        old = self.spec
        if req.by != old.submitter:
            raise refuse_audited(
                Rule.NOT_SUBMITTER, f"only the submitter ({old.submitter}) can amend this release"
            )
        new = self._amended_spec(old, req)
        old_digests, new_digests = old.digests(), new.digests()
        changed = sorted(k for k, v in old_digests.items() if new_digests.get(k) != v)
        for stage_id, gate in self.status.gates.items():
            if gate.closed_at is None:
                continue
            approved: set[str] = set()
            for decision in gate.valid_approvals():
                approved.update(decision.covered)
            hit = sorted(set(changed) & approved)
            if hit:
                raise refuse_audited(
                    Rule.AMEND_CLOSED_GATE,
                    f"{stage_id} already passed on {', '.join(hit)}; changing it needs a new release",
                )
        self.status.spec = new
        invalidated: list[str] = []
        found = self.open_gate_for_decisions()
        if found is not None:
            gate = found[2]
            for decision in gate.decisions:
                if not decision.valid:
                    continue
                if decision.kind is DecisionKind.APPROVE:
                    hit = sorted(k for k in decision.covered if k in changed)
                    if hit:
                        decision.valid = False
                        decision.invalidated_reason = (
                            f"{', '.join(hit)} changed by an amend at {when(now)}"
                        )
                        invalidated.append(decision.person)
                elif (
                    decision.kind is DecisionKind.REQUEST_CHANGES and decision.addressed_at is None
                ):
                    decision.addressed_at = now
        event = self.audit(
            now,
            req.by,
            "amended",
            {
                "changed": changed,
                "added": sorted(set(new_digests) - set(old_digests)),
                "note": req.note,
                "invalidated": invalidated,
                "digests": new_digests,
            },
        )
        self.notify(
            NotificationEvent.AMENDED,
            event,
            f"{self.title} amended",
            f"{req.by} amended the release: changed {', '.join(changed) or 'nothing'}. {req.note}".strip(),
            concerned=[self.spec.submitter],
        )
        if invalidated:
            self.notify(
                NotificationEvent.APPROVALS_INVALIDATED,
                event,
                "Your approval no longer stands",
                f"An amend changed {', '.join(changed)}, which your approval of {self.title} covered.",
                action_needed="Review the new evidence and approve again if it holds.",
                concerned=invalidated,
            )
        if found is not None:
            self.refresh_gate(found[0].id, found[1], now)
        parts = [f"amended {self.status.release_id}"]
        if changed:
            parts.append(f"changed {', '.join(changed)}")
        if invalidated:
            parts.append(f"invalidated the approvals of {', '.join(invalidated)}")
        return "; ".join(parts), bool(changed) or new_digests.keys() != old_digests.keys()

    @staticmethod
    def _amended_spec(old: ReleaseSpec, req: AmendRequest) -> ReleaseSpec:
        data = old.model_dump(mode="json")
        if req.artifact_sha256 is not None:
            data["artifact"]["sha256"] = req.artifact_sha256
        if req.artifact_uri is not None:
            data["artifact"]["uri"] = req.artifact_uri
        evidence = {item["id"]: item for item in data["evidence"]}
        for removed in req.remove_evidence:
            if removed not in evidence:
                raise refuse_audited(
                    Rule.UNKNOWN_EVIDENCE, f"no evidence with id '{removed}' to remove"
                )
            del evidence[removed]
        for item in req.evidence:
            evidence[item.id] = item.model_dump(mode="json")
        data["evidence"] = list(evidence.values())
        try:
            return ReleaseSpec.model_validate(data)
        except ValueError as err:
            raise refuse_audited(
                Rule.UNKNOWN_EVIDENCE, f"the amended spec is invalid: {err}"
            ) from err

    # --- government -------------------------------------------------------------------------

    def validate_government(self, req: GovernmentResponse, now: datetime) -> None:
        self._not_terminal()
        require_person(self.policy, req.by)
        subject = (
            req.delay_until.isoformat() if req.delay_until else (req.concern_id or req.concern)
        )
        self._check_signature(
            person_id=req.by,
            signature=req.signature,
            stage=self.status.stage,
            decision=f"government:{req.kind.value}",
            role=WellKnownRole.GOVERNMENT_LIAISON.value,
            subject=subject,
            now=now,
        )

    def apply_government(self, req: GovernmentResponse, now: datetime) -> str:
        self.validate_government(req, now)
        require_role(self.policy, req.by, WellKnownRole.GOVERNMENT_LIAISON.value)
        gov = self.status.government
        if gov.receipt is None:
            if self.window_stage() is None:
                raise refuse_audited(
                    Rule.NO_GOVERNMENT_STAGE,
                    f"this release has no government stage (covered_model {self.spec.covered_model.value})",
                )
            raise refuse_audited(
                Rule.NO_GOVERNMENT_STAGE,
                f"the release has not been submitted to the government yet (it is at {self.status.stage})",
            )
        if req.signature is not None:
            self.used_nonces.add(req.signature.nonce)
        kind = req.kind
        if kind is GovernmentResponseKind.CLEARED:
            return self._cleared(req, now)
        if kind is GovernmentResponseKind.DELAY_REQUESTED:
            return self._delay(req, now)
        if kind is GovernmentResponseKind.CONCERN_RAISED:
            return self._concern_raised(req, now)
        return self._concern_resolved(req, now)

    def _in_window(self) -> bool:
        gov = self.status.government
        return gov.window_opened_at is not None and gov.window_closed_at is None

    def _cleared(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.status.government
        if gov.cleared_at is not None:
            raise refuse_audited(
                Rule.ALREADY_CLEARED,
                f"the government already cleared this release at {when(gov.cleared_at)}",
            )
        gov.cleared_at = now
        gov.cleared_by = req.by
        event = self.audit(now, req.by, "government_cleared", {"reference": req.reference})
        for hold in self.status.active_holds():
            if hold.kind == "government":
                hold.released_at = now
                hold.released_by = req.by
        self.refresh_state()
        stage = self.window_stage()
        early = self._in_window() and stage is not None and stage.allow_early_clearance
        self.notify(
            NotificationEvent.GOVERNMENT_CLEARED,
            event,
            f"Government cleared {self.title}",
            f"{req.by} recorded that the government cleared the release"
            + (f" ({req.reference})" if req.reference else "")
            + (". The testing window ends early." if early else "."),
            concerned=[self.spec.submitter],
        )
        if gov.open_concerns():
            return f"clearance recorded; {len(gov.open_concerns())} open concern(s) still block progress"
        return "clearance recorded" + ("; the window ends early" if early else "")

    def _delay(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.status.government
        until = req.delay_until
        assert until is not None  # the model guarantees it for delay_requested
        if until <= now:
            raise refuse_audited(Rule.BAD_DATE, f"delay_until {when(until)} is not in the future")
        stage = self.window_stage()
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
            self.status.holds.append(
                HoldRecord(
                    kind="government",
                    by=req.by,
                    reason=f"government asked to delay until {when(until)}",
                    at=now,
                    until=until,
                )
            )
            self.refresh_state()
        gov.delays.append(
            DelayRecord(
                requested_at=now, by=req.by, until=until, reference=req.reference, effect=effect
            )
        )
        event = self.audit(
            now,
            req.by,
            "government_delay",
            {"until": when(until), "effect": effect, "reference": req.reference},
        )
        self.notify(
            NotificationEvent.WINDOW_EXTENDED
            if effect == "window_extended"
            else NotificationEvent.HELD,
            event,
            f"Government asked to delay {self.title}",
            f"The government asked to delay until {when(until)}; "
            + (
                "the testing window now ends then."
                if effect == "window_extended"
                else "the release is held until then."
            ),
            due=until,
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        if self.status.stage and self._in_window() and stage is not None:
            self.await_window(stage, now)
        return (
            f"delay recorded: the window now ends {when(gov.window_ends_at)}"
            if effect == "window_extended"
            else f"delay recorded: the release is held until {when(until)}"
        )

    def _concern_raised(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.status.government
        concern = Concern(
            id=f"c{len(gov.concerns) + 1}",
            raised_at=now,
            raised_by=req.by,
            text=req.concern,
            reference=req.reference,
        )
        gov.concerns.append(concern)
        event = self.audit(
            now,
            req.by,
            "concern_raised",
            {"concern": concern.id, "text": req.concern, "reference": req.reference},
        )
        self.notify(
            NotificationEvent.CONCERN_RAISED,
            event,
            f"Government concern {concern.id} on {self.title}",
            f"The government raised a concern: {req.concern}. The release cannot leave the "
            "testing window or launch until it is resolved.",
            action_needed="Address the concern with the government; the liaison records its resolution.",
            concerned=[self.spec.submitter],
            roles=["security", "executive"],
        )
        stage = self.window_stage()
        if self._in_window() and stage is not None:
            self.await_window(stage, now)
        return f"concern {concern.id} recorded; it blocks the window's end and the launch"

    def _concern_resolved(self, req: GovernmentResponse, now: datetime) -> str:
        gov = self.status.government
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
        event = self.audit(
            now, req.by, "concern_resolved", {"concern": concern.id, "reference": req.reference}
        )
        self.notify(
            NotificationEvent.CONCERN_RESOLVED,
            event,
            f"Government concern {concern.id} resolved",
            f"{req.by} recorded that concern {concern.id} ({concern.text}) is resolved.",
            concerned=[self.spec.submitter],
        )
        stage = self.window_stage()
        if self._in_window() and stage is not None:
            self.await_window(stage, now)
        return f"concern {concern.id} resolved"

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
        found = self.open_gate_for_decisions()
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
        self._notify_end(ReleaseState.WITHDRAWN, now, reason)
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

    # --- access orders ------------------------------------------------------------------------

    def validate_suspension(self, req: AccessSuspensionRequest, now: datetime) -> None:
        del now
        self._not_terminal()
        if not req.by.startswith("access-order") and self.policy.person(req.by) is None:
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
        self.notify(
            NotificationEvent.ACCESS_SUSPENDED,
            event,
            f"Order {req.order_id} now exempts {', '.join(req.exempt_partners) or 'nobody'}",
            f"Order {req.order_id} still suspends access to {self.title} for {req.scope}; "
            f"exempt partners (and all their staff): {', '.join(req.exempt_partners) or 'none'}.",
            concerned=[self.spec.submitter],
            roles=["operator"],
        )
        return f"order {req.order_id} exempts {', '.join(req.exempt_partners) or 'nobody'}"

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
        self.status.partner_lists = [
            *(p for p in self.status.partner_lists if p.stage != stage.id),
            partners,
        ]
        ids = [c.partner_id for c in eligible.candidates]
        event = self.audit(
            now,
            SYSTEM,
            "partners_proposed",
            {"partners": ids, "skipped": eligible.skipped},
            stage=stage.id,
        )
        liaison = WellKnownRole.GOVERNMENT_LIAISON.value
        self.notify(
            NotificationEvent.GATE_WAITING,
            event,
            f"Partner list for {self.title} awaits the government",
            f"{len(ids)} partner(s) are proposed for early access to {self.title}: "
            f"{', '.join(ids) or 'none'}. Each is granted only once the government approves it.",
            action_needed="Record the government's decision on each partner (approve_partners).",
            roles=[liaison],
            concerned=[self.spec.submitter],
        )
        self.await_partner_list(stage.id, now)
        return partners

    def await_partner_list(self, stage_id: str, now: datetime) -> None:
        partners = self.partner_lists[stage_id]
        undecided = partners.undecided()
        if partners.to_grant() and self.is_blocked():
            reasons = [h.reason for h in self.status.active_holds()]
            reasons += [f"order {s.order_id}" for s in self.status.active_suspensions()]
            self.await_(
                f"the release to resume to grant approved partners ({'; '.join(reasons)})",
                now,
                roles=[WellKnownRole.OPERATOR.value],
            )
            return
        liaison = WellKnownRole.GOVERNMENT_LIAISON.value
        shown = ", ".join(undecided[:10]) + (
            f" and {len(undecided) - 10} more" if len(undecided) > 10 else ""
        )
        self.await_(
            f"the government's decision on partner(s) {shown} at {stage_id}",
            now,
            roles=[liaison],
            people=[p.id for p in self.policy.people_with_role(liaison)],
        )

    def validate_partner_approval(self, req: PartnerApprovalRequest, now: datetime) -> None:
        self._not_terminal()
        require_person(self.policy, req.by)
        self._check_signature(
            person_id=req.by,
            signature=req.signature,
            stage=self.status.stage,
            decision=f"partners:{req.decision}",
            role=WellKnownRole.GOVERNMENT_LIAISON.value,
            subject=",".join(sorted(req.partners)),
            now=now,
        )

    def apply_partner_approval(self, req: PartnerApprovalRequest, now: datetime) -> str:
        """Record the government's decision on entries of the current stage's partner list."""
        self.validate_partner_approval(req, now)
        require_role(self.policy, req.by, WellKnownRole.GOVERNMENT_LIAISON.value)
        stage_id = self.status.stage or ""
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
            self.used_nonces.add(req.signature.nonce)
        if not fresh:
            return f"already recorded: {', '.join(req.partners)} {past}"
        for entry in fresh:
            entry.decision = req.decision
            entry.decided_by = req.by
            entry.decided_at = now
            entry.reason = req.reason
            entry.reference = req.reference
        ids = [e.candidate.partner_id for e in fresh]
        event = self.audit(
            now,
            req.by,
            f"partners_{past}",
            {"partners": ids, "reason": req.reason, "reference": req.reference},
        )
        left = len(partners.undecided())
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"Government {past} {len(ids)} partner(s)",
            f"{req.by} recorded that the government {past} {', '.join(ids)} for early "
            f"access to {self.title}. {left} partner(s) still await a decision.",
            concerned=[self.spec.submitter],
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
        event = self.audit(
            now,
            SYSTEM,
            "partner_list_settled",
            {"approved": partners.approved(), "denied": partners.denied()},
            stage=stage_id,
        )
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"Partner list for {self.title} settled",
            f"The government approved {len(partners.approved())} partner(s) "
            f"({', '.join(partners.approved()) or 'none'}) and denied "
            f"{len(partners.denied())}. The minimum partner period starts now.",
            concerned=[self.spec.submitter],
        )

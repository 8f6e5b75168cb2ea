"""Reviewers and the submitter: approve, reject, request changes, amend."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.checks import LedgerChecks
from gatekeeper.models.base import MAX_AUTHORS
from gatekeeper.models.enums import (
    DecisionKind,
    NotificationEvent,
    ReleaseState,
)
from gatekeeper.models.messages import (
    AmendRequest,
    AuthorshipAttestation,
    DecisionRequest,
    DecisionSignature,
)
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import (
    AttestedAuthorship,
    Decision,
)
from gatekeeper.rules import (
    Rule,
    authorize_decision,
    covered_digests,
    gate_roles,
    refuse_audited,
    require_person,
    resolve_acting,
)
from gatekeeper.stages import approval_gate
from gatekeeper.statements import RequestSignature
from gatekeeper.text import when


class ReviewDecisions(LedgerChecks):
    """Decisions at approval gates, and the submitter's amends."""

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
        found = approval_gate.open_gate_for_decisions(self)
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
        event = self.audit(now, acting.person, f"decision_{kind.value}", details, stage=stage.id)
        who = acting.person + (f" (for {acting.on_behalf_of})" if acting.on_behalf_of else "")
        if kind is DecisionKind.REJECT:
            reason = f"rejected at {stage.id} by {who}" + (
                f": {req.comment}" if req.comment else ""
            )
            self.end(ReleaseState.REJECTED, now, reason, acting.person)
            self.notify_end(ReleaseState.REJECTED, now, reason)
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
            approval_gate.refresh_gate(self, stage.id, settings, now)
            return f"{who} asked for changes at {stage.id}; the gate waits for an amend"
        progress = approval_gate.progress(self, stage.id, settings)
        self.notify(
            NotificationEvent.DECISION_RECORDED,
            event,
            f"{who} approved {stage.id}",
            f"{who} approved {self.title} at {stage.id} as {acting.role}. Quorum: {progress.describe()}.",
            concerned=[self.spec.submitter],
        )
        approval_gate.refresh_gate(self, stage.id, settings, now)
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
        self.status.spec = self._with_attested_authors(new)
        invalidated: list[str] = []
        found = approval_gate.open_gate_for_decisions(self)
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
            approval_gate.refresh_gate(self, found[0].id, found[1], now)
        parts = [f"amended {self.status.release_id}"]
        if changed:
            parts.append(f"changed {', '.join(changed)}")
        if invalidated:
            parts.append(f"invalidated the approvals of {', '.join(invalidated)}")
        return "; ".join(parts), bool(changed) or new_digests.keys() != old_digests.keys()

    # --- evidence authorship ---------------------------------------------------------------

    def validate_authorship(self, req: AuthorshipAttestation, now: datetime) -> None:
        del now
        self._not_terminal()
        require_person(self.policy, req.by)

    def apply_authorship(self, req: AuthorshipAttestation, now: datetime) -> str:
        """Record who wrote an evidence item, attested by one of its authors (for themselves)
        or by a reviewer of a gate that covers it; the attested authors then count for
        separation of duties like declared ones, while the item keeps its digest."""
        self.validate_authorship(req, now)
        item = next((e for e in self.spec.evidence if e.id == req.evidence_id), None)
        if item is None:
            raise refuse_audited(
                Rule.UNKNOWN_EVIDENCE, f"no evidence with id '{req.evidence_id}' to attest"
            )
        authors = sorted(set(req.authors))
        person = self.policy.person(req.by)
        roles = set(person.roles) if person is not None else set()
        reviewer = any(
            set(gate_roles(stage)) & roles and item.id in covered_digests(stage, self.spec)
            for stage in self.policy.stages
            if isinstance(stage, GateSettings)
        )
        if authors != [req.by] and not reviewer:
            raise refuse_audited(
                Rule.NOT_AUTHORISED,
                f"{req.by} may attest only their own authorship of {item.id} (a reviewer of a "
                "gate that covers it may attest anyone's)",
            )
        previous = self.status.authorship.get(item.id)
        if previous is not None and previous.sha256 == item.sha256 and previous.authors == authors:
            return f"the authorship of {item.id} is already attested"
        self.status.authorship[item.id] = AttestedAuthorship(
            evidence_id=item.id, sha256=item.sha256, authors=authors, by=req.by, at=now
        )
        self.status.spec = self._with_attested_authors(self.spec)
        self.audit(
            now,
            req.by,
            "authorship_attested",
            {
                "evidence_id": item.id,
                "sha256": item.sha256,
                "authors": authors,
                "comment": req.comment,
            },
        )
        found = approval_gate.open_gate_for_decisions(self)
        if found is not None:
            approval_gate.refresh_gate(self, found[0].id, found[1], now)
        return f"{req.by} attested that {', '.join(authors)} wrote {item.id}"

    def _with_attested_authors(self, spec: ReleaseSpec) -> ReleaseSpec:
        """``spec`` with the attested authors of each item added (attestations of the item's
        current digest only)."""
        data = spec.model_dump(mode="json")
        for item in data["evidence"]:
            attested = self.status.authorship.get(item["id"])
            if attested is not None and attested.sha256 == item["sha256"]:
                item["authors"] = sorted({*item["authors"], *attested.authors})[:MAX_AUTHORS]
        return ReleaseSpec.model_validate(data)

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

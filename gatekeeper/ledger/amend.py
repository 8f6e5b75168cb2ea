"""The submitter's amends: changed evidence or artifact; approvals that covered a change lapse."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.authorship import with_attested_authors
from gatekeeper.ledger.checks import not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.enums import DecisionKind, NotificationEvent
from gatekeeper.models.messages import AmendRequest
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.rules import Rule, refuse_audited, require_person
from gatekeeper.stages import approval_gate
from gatekeeper.text import when


class AmendDecider:
    """The submitter's amends. An amend that changes a digest moves the ledger's evidence
    version: the workflow verifies the evidence again, and only the verification of the latest
    version is recorded (:meth:`~gatekeeper.ledger.state.Ledger.record_evidence_checks`)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- amend ---------------------------------------------------------------------------------

    def validate_amend(self, req: AmendRequest, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)

    def apply_amend(self, req: AmendRequest, now: datetime) -> tuple[str, bool]:
        """Apply an amend. Returns (message, whether evidence must be verified again); when it
        must, the evidence version moves on, so only a verification asked for from now on counts."""
        self.validate_amend(req, now)
        old = self.ledger.spec
        if req.by != old.submitter:
            raise refuse_audited(
                Rule.NOT_SUBMITTER, f"only the submitter ({old.submitter}) can amend this release"
            )
        new = self._amended_spec(old, req)
        old_digests, new_digests = old.digests(), new.digests()
        changed = sorted(k for k, v in old_digests.items() if new_digests.get(k) != v)
        for stage_id, gate in self.ledger.status.gates.items():
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
        self.ledger.status.spec = with_attested_authors(self.ledger, new)
        invalidated: list[str] = []
        found = approval_gate.open_gate_for_decisions(self.ledger)
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
        event = self.ledger.audit(
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
        self.ledger.notify(
            NotificationEvent.AMENDED,
            event,
            f"{self.ledger.title} amended",
            f"{req.by} amended the release: changed {', '.join(changed) or 'nothing'}. {req.note}".strip(),
            concerned=[self.ledger.spec.submitter],
        )
        if invalidated:
            self.ledger.notify(
                NotificationEvent.APPROVALS_INVALIDATED,
                event,
                "Your approval no longer stands",
                f"An amend changed {', '.join(changed)}, which your approval of {self.ledger.title} covered.",
                action_needed="Review the new evidence and approve again if it holds.",
                concerned=invalidated,
            )
        if found is not None:
            approval_gate.refresh_gate(self.ledger, found[0].id, found[1], now)
        parts = [f"amended {self.ledger.status.release_id}"]
        if changed:
            parts.append(f"changed {', '.join(changed)}")
        if invalidated:
            parts.append(f"invalidated the approvals of {', '.join(invalidated)}")
        reverify = bool(changed) or new_digests.keys() != old_digests.keys()
        if reverify:
            self.ledger.evidence_version += 1
        return "; ".join(parts), reverify

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

"""Evidence authorship: who wrote an item, attested by an author or a reviewer."""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.checks import not_terminal
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.base import MAX_AUTHORS
from gatekeeper.models.messages import AuthorshipAttestation
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import AttestedAuthorship
from gatekeeper.rules import (
    Rule,
    covered_digests,
    gate_roles,
    refuse_audited,
    require_person,
)
from gatekeeper.stages import approval_gate


class AuthorshipDecider:
    """Attestations of who wrote an evidence item."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # --- evidence authorship ---------------------------------------------------------------

    def validate_authorship(self, req: AuthorshipAttestation, now: datetime) -> None:
        del now
        not_terminal(self.ledger)
        require_person(self.ledger.policy, req.by)

    def apply_authorship(self, req: AuthorshipAttestation, now: datetime) -> str:
        """Record who wrote an evidence item, attested by one of its authors (for themselves)
        or by a reviewer of a gate that covers it; the attested authors then count for
        separation of duties like declared ones, while the item keeps its digest."""
        self.validate_authorship(req, now)
        item = next((e for e in self.ledger.spec.evidence if e.id == req.evidence_id), None)
        if item is None:
            raise refuse_audited(
                Rule.UNKNOWN_EVIDENCE, f"no evidence with id '{req.evidence_id}' to attest"
            )
        authors = sorted(set(req.authors))
        person = self.ledger.policy.person(req.by)
        roles = set(person.roles) if person is not None else set()
        reviewer = any(
            set(gate_roles(stage)) & roles and item.id in covered_digests(stage, self.ledger.spec)
            for stage in self.ledger.policy.stages
            if isinstance(stage, GateSettings)
        )
        if authors != [req.by] and not reviewer:
            raise refuse_audited(
                Rule.NOT_AUTHORISED,
                f"{req.by} may attest only their own authorship of {item.id} (a reviewer of a "
                "gate that covers it may attest anyone's)",
            )
        previous = self.ledger.status.authorship.get(item.id)
        if previous is not None and previous.sha256 == item.sha256 and previous.authors == authors:
            return f"the authorship of {item.id} is already attested"
        self.ledger.status.authorship[item.id] = AttestedAuthorship(
            evidence_id=item.id, sha256=item.sha256, authors=authors, by=req.by, at=now
        )
        self.ledger.status.spec = with_attested_authors(self.ledger, self.ledger.spec)
        self.ledger.audit(
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
        found = approval_gate.open_gate_for_decisions(self.ledger)
        if found is not None:
            approval_gate.refresh_gate(self.ledger, found[0].id, found[1], now)
        return f"{req.by} attested that {', '.join(authors)} wrote {item.id}"


def with_attested_authors(ledger: Ledger, spec: ReleaseSpec) -> ReleaseSpec:
    """``spec`` with the attested authors of each item added (attestations of the item's
    current digest only)."""
    data = spec.model_dump(mode="json")
    for item in data["evidence"]:
        attested = ledger.status.authorship.get(item["id"])
        if attested is not None and attested.sha256 == item["sha256"]:
            item["authors"] = sorted({*item["authors"], *attested.authors})[:MAX_AUTHORS]
    return ReleaseSpec.model_validate(data)

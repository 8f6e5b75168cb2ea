"""Partners the government approves one by one (``government_approves_partners`` on an
``access_grant`` stage): the proposed list, the liaison's update, and the list as it is settled.

The stage asks the registry which partners the release's cohorts admit, proposes them, and waits
for the government liaison to approve or deny each entry (``approve_partners``). Approved
partners are granted as they are approved; denied ones never are. The list is *settled* when
every entry is decided, and the stage's minimum partner period starts then.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from gatekeeper.models.base import MAX_LIST, MAX_PARTNERS, Identifier, Model, ShortText, Text
from gatekeeper.models.enums import VettingTier
from gatekeeper.models.messages import DecisionSignature
from gatekeeper.models.policy import Cohort
from gatekeeper.statements import RequestSignature

#: The most partners one stage proposes; the rest are not proposed, so not granted (fail closed).
MAX_CANDIDATES = MAX_PARTNERS


def _unique(value: list[str]) -> list[str]:
    repeated = sorted(name for name, n in Counter(value).items() if n > 1)
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return value


class PartnerCandidate(Model):
    """A partner the release's cohorts admit, proposed to the government."""

    partner_id: Identifier
    partner_name: str = ""
    tier: VettingTier
    jurisdiction: Identifier
    cohort: Identifier


class EligiblePartnersRequest(Model):
    """Which partners would ``cohorts`` grant in ``regions``? Nothing is granted."""

    release_id: Identifier
    cohorts: list[Cohort] = Field(max_length=MAX_LIST)
    regions: list[Identifier] = Field(max_length=MAX_LIST)
    limit: int = Field(default=MAX_CANDIDATES, ge=1, le=MAX_CANDIDATES)


class EligiblePartners(Model):
    candidates: list[PartnerCandidate] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="partners not eligible, and why")


class PartnerApprovalRequest(Model):
    """``approve_partners``: the government liaison decides entries of the proposed list.

    Example, from the Temporal CLI::

        temporal workflow update execute -w release-aurora-2 --name approve_partners \\
            --input '{"by": "gus.liaison", "partners": ["acme-labs"], "decision": "approve"}'
    """

    by: Identifier
    partners: Annotated[
        list[Identifier], Field(min_length=1, max_length=MAX_CANDIDATES), AfterValidator(_unique)
    ]
    decision: Literal["approve", "deny"]
    reason: Text = ""
    reference: ShortText = Field(default="", description="the government's letter or ticket")
    signature: RequestSignature | DecisionSignature | None = Field(
        default=None,
        description="a registered key's signature over the request (gatekeeper.statements); "
        "the pre-registry form is kept so recorded histories replay",
    )

    def signed_subject(self) -> str:
        """What a signature asserts besides the decision: the partners, sorted, comma-joined."""
        return ",".join(sorted(self.partners))


class PartnerListEntry(Model):
    """One proposed partner and what the government decided about it."""

    candidate: PartnerCandidate
    decision: Literal["approve", "deny"] | None = None
    decided_by: Identifier | None = None
    decided_at: datetime | None = None
    reason: str = ""
    reference: str = ""
    granted: bool = False


class PartnerList(Model):
    """The partner list of one ``access_grant`` stage, entry by entry."""

    stage: Identifier
    proposed_at: datetime
    entries: list[PartnerListEntry] = Field(default_factory=list)
    settled_at: datetime | None = None

    def entry(self, partner_id: str) -> PartnerListEntry | None:
        return next((e for e in self.entries if e.candidate.partner_id == partner_id), None)

    def undecided(self) -> list[str]:
        return [e.candidate.partner_id for e in self.entries if e.decision is None]

    def to_grant(self) -> list[str]:
        """Approved partners not granted yet."""
        return [
            e.candidate.partner_id
            for e in self.entries
            if e.decision == "approve" and not e.granted
        ]

    def approved(self) -> list[str]:
        return [e.candidate.partner_id for e in self.entries if e.decision == "approve"]

    def denied(self) -> list[str]:
        return [e.candidate.partner_id for e in self.entries if e.decision == "deny"]

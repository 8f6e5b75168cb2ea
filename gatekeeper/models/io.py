"""Inputs and outputs of activities. Each carries a business idempotency key.

Keys are made from the business (release, stage, action, sequence), never from the attempt, and
every adapter deduplicates on them: activities run at least once, side effects happen once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.enums import Channel, NotificationEvent, Surface
from gatekeeper.models.policy import ChannelConfig, Cohort
from gatekeeper.models.spec import Artifact, EvidenceRef, ModelRef
from gatekeeper.models.status import EvidenceCheck, GrantRecord


class Recipient(Model):
    """One addressee on one channel. ``id`` is a person id or ``cohort:<id>``."""

    id: str
    name: str = ""
    email: str | None = None
    channel: Identifier


class Notification(Model):
    """A message for people, already written: what happened, what is needed, by when, where."""

    idempotency_key: str
    release_id: Identifier
    event: NotificationEvent
    stage: str | None = None
    subject: str
    body: str
    action_needed: str = ""
    due: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class NotifyRequest(Model):
    notification: Notification
    recipients: list[Recipient]
    channels: list[ChannelConfig] = Field(default_factory=list)


class Delivery(Model):
    recipient: str
    channel: Identifier
    channel_type: Channel
    key: str
    duplicate: bool = False


class NotifyResult(Model):
    deliveries: list[Delivery] = Field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(1 for d in self.deliveries if not d.duplicate)


class SubmissionRequest(Model):
    idempotency_key: str
    release_id: Identifier
    model: ModelRef
    artifact: Artifact
    covered_model: str
    evidence: list[EvidenceRef]
    clearinghouse: Identifier
    submitted_by: Identifier
    requested_at: datetime


class GrantRequest(Model):
    idempotency_key: str
    release_id: Identifier
    stage: Identifier
    model: ModelRef
    cohorts: list[Cohort]
    regions: list[Identifier]
    surfaces: list[Surface]
    requested_at: datetime
    partners: list[Identifier] | None = Field(
        default=None,
        description="grant only these partners (those the government approved); None = every "
        "partner the cohorts admit",
    )


#: Grants an activity result carries in full; past this, counts and a digest stand for the rest
#: (the registry keeps every grant; history must stay far below Temporal's payload limits).
GRANT_SAMPLE = 100


class GrantResult(Model):
    grants: list[GrantRecord] = Field(
        default_factory=list, description=f"the grants made, at most the first {GRANT_SAMPLE}"
    )
    skipped: list[str] = Field(
        default_factory=list, description="partners not granted, with the reason"
    )
    total: int | None = Field(default=None, description="grants made (None: len(grants))")
    partners_total: int | None = None
    suspended_total: int | None = Field(
        default=None, description="grants that start suspended (an order covers the partner)"
    )
    cohort_counts: dict[str, int] = Field(default_factory=dict)
    grants_digest: str = Field(
        default="", description="sha256 of the sorted ids of every grant made, full list included"
    )

    @property
    def count(self) -> int:
        return self.total if self.total is not None else len(self.grants)

    @property
    def suspended_count(self) -> int:
        if self.suspended_total is not None:
            return self.suspended_total
        return sum(1 for g in self.grants if g.status == "suspended")

    @property
    def partner_count(self) -> int:
        if self.partners_total is not None:
            return self.partners_total
        return len({g.partner_id for g in self.grants})

    def compacted(self, limit: int = GRANT_SAMPLE) -> GrantResult:
        """Counts and a digest of every grant, with only the first ``limit`` in full."""
        ids = sorted(g.grant_id for g in self.grants)
        cohorts: dict[str, int] = {}
        for grant in self.grants:
            cohorts[grant.cohort] = cohorts.get(grant.cohort, 0) + 1
        return GrantResult(
            grants=self.grants[:limit],
            skipped=self.skipped,
            total=len(self.grants),
            partners_total=len({g.partner_id for g in self.grants}),
            suspended_total=sum(1 for g in self.grants if g.status == "suspended"),
            cohort_counts=dict(sorted(cohorts.items())),
            grants_digest=sha256_hex(canonical_json(ids)),
        )


class RevokeRequest(Model):
    idempotency_key: str
    release_id: Identifier
    grant_ids: list[str] = Field(description="grants to revoke; empty means every active grant")
    reason: str
    order_id: str | None = None
    requested_at: datetime


class RevokeResult(Model):
    revoked: list[str] = Field(
        default_factory=list, description=f"revoked grant ids, at most the first {GRANT_SAMPLE}"
    )
    total: int | None = Field(default=None, description="grants revoked (None: len(revoked))")

    @property
    def count(self) -> int:
        return self.total if self.total is not None else len(self.revoked)

    def compacted(self, limit: int = GRANT_SAMPLE) -> RevokeResult:
        return RevokeResult(revoked=self.revoked[:limit], total=len(self.revoked))


class EvidenceCheckRequest(Model):
    release_id: Identifier
    artifact: Artifact
    evidence: list[EvidenceRef]


class EvidenceCheckResult(Model):
    checks: list[EvidenceCheck]

    @property
    def failures(self) -> list[EvidenceCheck]:
        return [c for c in self.checks if c.failed]


class LaunchRequest(Model):
    idempotency_key: str
    release_id: Identifier
    model: ModelRef
    artifact: Artifact
    surfaces: list[Surface]
    approved_by: list[Identifier]
    requested_at: datetime


class LaunchReceipt(Model):
    launch_id: str
    published_at: datetime
    location: str = ""


class AuditFlushRequest(Model):
    release_id: Identifier
    events: list[AuditEvent]


class AuditFlushResult(Model):
    stored: int
    already_stored: int

"""Inputs and outputs of activities. Each carries a business idempotency key.

Keys are made from the business (release, stage, action, sequence), never from the attempt, and
every adapter deduplicates on them: activities run at least once, side effects happen once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.models.audit import AuditEntry, AuditEvent
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.enums import NotificationEvent, Surface
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from gatekeeper.models.policy import Cohort
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
    """One notification for its recipients. Each recipient names its channel; what that channel
    is (URL, host, secret) only the worker knows, so nothing about it enters workflow history."""

    notification: Notification
    recipients: list[Recipient]

    @model_validator(mode="before")
    @classmethod
    def _legacy_channels(cls, data: object) -> object:
        # Requests scheduled before channels moved to the worker carried their configuration; it
        # is ignored (never used to deliver), so those activities still run on the new worker.
        if isinstance(data, dict) and "channels" in data:
            data = {k: v for k, v in data.items() if k != "channels"}
        return data


class Delivery(Model):
    recipient: str
    channel: Identifier
    #: The channel's type (``log``, ``outbox``, ``webhook``, ... : ``gatekeeper.channels``).
    channel_type: Identifier
    key: str
    duplicate: bool = False


class NotifyResult(Model):
    deliveries: list[Delivery] = Field(default_factory=list)
    unconfigured: list[str] = Field(
        default_factory=list,
        description="channel names routed to that this worker does not define; nothing was sent "
        "on them, and nothing else was sent in their place",
    )

    @property
    def sent(self) -> int:
        return sum(1 for d in self.deliveries if not d.duplicate)


class NotifySummary(Model):
    """What one ``notify_stakeholders`` call did, in counts (the activity's result).

    A fan-out to 5,000 partners stays a few hundred bytes in workflow history; which keys went
    out is in the outbox and the channels' journals, not in the result.
    """

    notification: str = Field(description="the notification's idempotency key")
    deliveries: int = Field(description="deliveries after expanding cohorts to their partners")
    delivered: int
    already_delivered: int
    by_channel: dict[str, int] = Field(default_factory=dict)
    unconfigured: list[str] = Field(
        default_factory=list, description="channel names this worker does not define"
    )

    @property
    def sent(self) -> int:
        return self.delivered

    @classmethod
    def of(cls, notification: Notification, result: NotifyResult) -> NotifySummary:
        by_channel: dict[str, int] = {}
        for delivery in result.deliveries:
            by_channel[delivery.channel] = by_channel.get(delivery.channel, 0) + 1
        return cls(
            notification=notification.idempotency_key,
            deliveries=len(result.deliveries),
            delivered=result.sent,
            already_delivered=len(result.deliveries) - result.sent,
            by_channel=by_channel,
            unconfigured=result.unconfigured,
        )


class NotifyBatch(Model):
    """Every notification one workflow task produced, for one ``notify_stakeholders`` call: one
    activity in history however many notices a step raised. Each notification keeps its own
    idempotency key, so its deliveries' keys do not depend on how notices were batched, and a
    retry of the batch skips what an earlier attempt delivered."""

    requests: list[NotifyRequest] = Field(min_length=1)


class NotifyFailure(Model):
    """A notification of a batch that was not (fully) delivered: by its idempotency key, the
    error (empty when only ``unconfigured`` channels are why), and the channel names routed to
    that the worker does not define."""

    key: str
    error: str = ""
    unconfigured: list[str] = Field(default_factory=list)


class NotifyBatchSummary(Model):
    """What one batched ``notify_stakeholders`` call did: counts over the batch, and only the
    notifications the workflow must audit as failed (a retryable failure is reported here only
    by the last attempt; earlier ones raise, so Temporal retries and delivered keys are skipped)."""

    notifications: int
    deliveries: int = 0
    delivered: int = 0
    already_delivered: int = 0
    failed: list[NotifyFailure] = Field(default_factory=list)


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


#: Orders one ``find_orders_in_force`` answer lists at most (a model has a handful at a time).
MAX_ORDERS_FOUND = 50


class OrdersInForceRequest(Model):
    """Which organisation-wide orders cover ``model`` now (read-only; a release asks before it
    grants partner access and before it launches), and what became of the orders ``recheck``
    names (the release holds them, lifted since?)."""

    release_id: Identifier
    model: Identifier
    recheck: list[Identifier] = Field(default_factory=list, max_length=MAX_ORDERS_FOUND)


class OrderFound(Model):
    """One order covering the release's model, as the release records it: the suspension the
    order would have sent it (with the partners exempt for its model), and, once the registry
    has lifted the order, the restore its lift would have sent."""

    suspend: AccessSuspensionRequest
    lifted: AccessRestoreRequest | None = None


class OrdersInForce(Model):
    orders: list[OrderFound] = Field(default_factory=list, max_length=MAX_ORDERS_FOUND)


class AuditFlushRequest(Model):
    """The audit events to store: ``events`` whole, or (COST_PATCH, issue 16) ``entries`` after
    the event whose hash is ``prev_hash``, which the activity seals itself
    (:func:`gatekeeper.audit.sealed`)."""

    release_id: Identifier
    events: list[AuditEvent] = Field(default_factory=list)
    entries: list[AuditEntry] = Field(default_factory=list)
    prev_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class AuditFlushResult(Model):
    stored: int
    already_stored: int
    #: How many events the store holds for the release after this call (``None`` in results
    #: recorded before it was reported): the workflow's "stored up to" mark comes from here, never
    #: from its own count of what it sent (see ``workflows.effects.Effects._flush_audit``).
    length: int | None = None

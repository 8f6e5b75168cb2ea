"""A release's state as the workflow keeps it and as ``get_status`` returns it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.enums import (
    DecisionKind,
    ReleaseState,
    StageKind,
    StageStatus,
    Surface,
)
from gatekeeper.models.messages import DecisionSignature
from gatekeeper.models.partners import PartnerList
from gatekeeper.models.spec import ReleaseSpec


class StageRecord(Model):
    id: Identifier
    kind: StageKind
    title: str
    status: StageStatus = StageStatus.PENDING
    started_at: datetime | None = None
    ended_at: datetime | None = None
    note: str = ""


class Decision(Model):
    """A decision recorded at a gate, with exactly what it covered."""

    kind: DecisionKind
    person: Identifier
    role: Identifier
    on_behalf_of: Identifier | None = None
    at: datetime
    comment: str = ""
    covered: dict[str, str] = Field(
        default_factory=dict, description="digest of each evidence id the decision covered"
    )
    #: The pre-registry signature (releases recorded before signed requests); current
    #: decisions are signed requests whose attestation is in their audit event.
    signature: DecisionSignature | None = None
    key_id: str | None = Field(
        default=None,
        description="the registered key that signed the decision (its audit event "
        "holds the statement and signature)",
    )
    valid: bool = True
    invalidated_reason: str = ""
    addressed_at: datetime | None = Field(
        default=None, description="request_changes only: when an amend answered it"
    )


class GateState(Model):
    stage: Identifier
    opened_at: datetime
    closed_at: datetime | None = None
    deadline_at: datetime | None = None
    decisions: list[Decision] = Field(default_factory=list)
    reminders_sent: int = 0
    escalated_at: datetime | None = None

    def valid_approvals(self) -> list[Decision]:
        return [d for d in self.decisions if d.kind is DecisionKind.APPROVE and d.valid]

    def open_change_requests(self) -> list[Decision]:
        return [
            d
            for d in self.decisions
            if d.kind is DecisionKind.REQUEST_CHANGES and d.valid and d.addressed_at is None
        ]


class Concern(Model):
    id: Identifier
    raised_at: datetime
    raised_by: Identifier
    text: str
    reference: str = ""
    resolved_at: datetime | None = None
    resolved_by: Identifier | None = None


class DelayRecord(Model):
    requested_at: datetime
    by: Identifier
    until: datetime
    reference: str = ""
    effect: Literal["window_extended", "release_held"]


class GovernmentReceipt(Model):
    receipt_id: str
    clearinghouse: str
    received_at: datetime
    location: str = ""


class GovernmentState(Model):
    receipt: GovernmentReceipt | None = None
    window_opened_at: datetime | None = None
    window_original_ends_at: datetime | None = None
    window_ends_at: datetime | None = None
    window_closed_at: datetime | None = None
    cleared_at: datetime | None = None
    cleared_by: Identifier | None = None
    delays: list[DelayRecord] = Field(default_factory=list)
    concerns: list[Concern] = Field(default_factory=list)

    def open_concerns(self) -> list[Concern]:
        return [c for c in self.concerns if c.resolved_at is None]


class GrantRecord(Model):
    """Early access for one partner organisation to this release's model."""

    grant_id: str
    partner_id: Identifier
    partner_name: str = ""
    cohort: Identifier
    jurisdiction: Identifier
    surface: Surface
    status: Literal["active", "suspended", "revoked"] = "active"
    granted_at: datetime
    changed_at: datetime | None = None
    reason: str = ""
    order_id: str | None = None


class GrantSummary(Model):
    """Every grant the release made, counted; ``ReleaseStatus.grants`` lists only a sample."""

    total: int = 0
    active: int = 0
    suspended: int = 0
    revoked: int = 0
    partners: int = 0
    cohorts: dict[str, int] = Field(default_factory=dict)
    digests: list[str] = Field(
        default_factory=list, description="grants_digest of each grant batch, in order"
    )


class HoldRecord(Model):
    kind: Literal["operator", "government", "deadline"]
    by: Identifier
    reason: str
    at: datetime
    until: datetime | None = None
    released_at: datetime | None = None
    released_by: str | None = None


class Delegation(Model):
    by: Identifier
    to: Identifier
    role: Identifier
    at: datetime
    until: datetime
    reason: str = ""
    revoked_at: datetime | None = None


class AttestedAuthorship(Model):
    """Who wrote an evidence item (at a digest), as a signed ``attest_authorship`` said."""

    evidence_id: Identifier
    sha256: str
    authors: list[Identifier]
    by: Identifier
    at: datetime


class Suspension(Model):
    order_id: Identifier
    by: Identifier
    scope: Identifier
    exempt_partners: list[Identifier] = Field(default_factory=list)
    reason: str
    at: datetime
    lifted_at: datetime | None = None
    lifted_by: Identifier | None = None
    safeguards: list[str] = Field(default_factory=list)
    per_person: bool = Field(
        default=False,
        description="enforced person by person by the registry's access checks (a "
        "foreign_persons order): the release goes on granting and launching, and checks deny "
        "the persons the order covers; false: the release waits before granting and launching",
    )


#: ``refused``: the worker's evidence rules forbid reading the item (outside the roots, not a
#: regular file, too large, too slow, a scheme not accepted); nothing about the file is reported.
EvidenceOutcome = Literal["ok", "mismatch", "unreadable", "refused", "unverified"]
#: Outcomes that block every gate until an amend fixes the item.
FAILED_EVIDENCE: frozenset[str] = frozenset({"mismatch", "unreadable", "refused"})


class EvidenceCheck(Model):
    id: str
    uri: str
    expected: str
    actual: str | None = None
    result: EvidenceOutcome
    detail: str = ""
    checked_at: datetime | None = None

    @property
    def failed(self) -> bool:
        """Whether this item blocks the gates (mismatch, unreadable or refused)."""
        return self.result in FAILED_EVIDENCE


class Awaiting(Model):
    """What the release is waiting for, and from whom: the operator's first question."""

    what: str
    roles: list[Identifier] = Field(default_factory=list)
    people: list[Identifier] = Field(default_factory=list)
    since: datetime
    until: datetime | None = None


class ReleaseStatus(Model):
    """The whole release as ``get_status`` returns it."""

    release_id: Identifier
    spec: ReleaseSpec
    first_run_id: str = Field(
        default="",
        description="the workflow's first run id: what a signed request binds besides the "
        "release id, the stage, the artifact and the evidence digests (in spec)",
    )
    policy_id: Identifier
    policy_version: str
    policy_sha256: str
    state: ReleaseState = ReleaseState.ACTIVE
    stage: Identifier | None = None
    stages: list[StageRecord]
    awaiting: Awaiting | None = None
    gates: dict[str, GateState] = Field(default_factory=dict)
    government: GovernmentState = Field(default_factory=GovernmentState)
    grants: list[GrantRecord] = Field(
        default_factory=list, description="the first grants in full (the registry has them all)"
    )
    grant_summary: GrantSummary = Field(default_factory=GrantSummary)
    partner_lists: list[PartnerList] = Field(
        default_factory=list,
        description="partner lists proposed to the government (government_approves_partners)",
    )
    holds: list[HoldRecord] = Field(default_factory=list)
    delegations: list[Delegation] = Field(default_factory=list)
    authorship: dict[str, AttestedAuthorship] = Field(
        default_factory=dict,
        description="attested authors by evidence id (they count for separation of duties "
        "besides the declared ones; an attestation stands while the item keeps its digest)",
    )
    suspensions: list[Suspension] = Field(default_factory=list)
    evidence_checks: list[EvidenceCheck] = Field(default_factory=list)
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    outcome: str = ""
    audit_head: str
    audit_length: int = 0
    status_version: int = Field(
        default=0,
        description="increases with every change the workflow commits; an update's result "
        "names the version that includes it",
    )
    requests: dict[str, int] = Field(
        default_factory=dict,
        description="accepted requests by budget (see docs/requests.md), and 'refused' for "
        "audited refusals",
    )

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    def stage_record(self, stage_id: str) -> StageRecord | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    def active_holds(self) -> list[HoldRecord]:
        return [h for h in self.holds if h.released_at is None]

    def active_suspensions(self) -> list[Suspension]:
        """The orders in force that suspend the release (it grants and launches only after)."""
        return [s for s in self.suspensions if s.lifted_at is None and not s.per_person]

    def orders_in_force(self) -> list[Suspension]:
        """Every order in force on the release: those suspending it and those that access
        checks enforce person by person (:attr:`Suspension.per_person`)."""
        return [s for s in self.suspensions if s.lifted_at is None]


class ReleaseHead(Model):
    """Where a release is, in a few hundred bytes (the ``get_head`` query): its status's version,
    state, stage and what it awaits, and what a signed request binds. Pollers (``release
    watch``) and signers read this, and query the whole status (``get_status``) only when they
    need it, e.g. when ``status_version`` moved."""

    release_id: Identifier
    status_version: int
    state: ReleaseState
    stage: Identifier | None = None
    awaiting_roles: list[Identifier] = Field(default_factory=list)
    updated_at: datetime
    first_run_id: str = ""
    artifact_sha256: str | None = None
    evidence: dict[str, str] = Field(
        default_factory=dict, description="evidence digests by evidence id"
    )

    @classmethod
    def of(cls, status: ReleaseStatus) -> ReleaseHead:
        spec = status.spec
        return cls(
            release_id=status.release_id,
            status_version=status.status_version,
            state=status.state,
            stage=status.stage,
            awaiting_roles=list(status.awaiting.roles) if status.awaiting else [],
            updated_at=status.updated_at,
            first_run_id=status.first_run_id,
            artifact_sha256=spec.artifact.sha256,
            evidence={e.id: e.sha256 for e in spec.evidence},
        )


class UpdateResult(Model):
    """What every update answers: the decision's outcome in one line and where the release is
    now. Small on purpose (it is stored in history once per update); callers that need the
    whole release query ``get_status``, whose ``status_version`` is at least this one when the
    status includes the update."""

    message: str
    release_id: Identifier
    state: ReleaseState
    stage: Identifier | None = None
    status_version: int


#: The update a start carries (Update-with-Start); the release answers it once it has resolved
#: its policy and its first stage waits, or fails it with the start's one-line refusal.
STARTED_UPDATE = "wait_started"


class ReleaseInput(Model):
    """The workflow's input: the spec and the *name* of the installed policy to run under.

    ``policy_ref`` is ``policy_id@version`` (``None``: the policy store's default). The worker
    resolves it through its own store; the content never travels with the start. ``policy`` and
    ``policy_sha256`` are the old shape's fields, kept only so that a start carrying a policy body
    decodes and is then refused (``bad_input``) instead of running under it.
    """

    spec: ReleaseSpec
    policy_ref: str | None = Field(default=None, max_length=200)
    policy: Any = Field(default=None, description="refused: a policy body (install it instead)")
    policy_sha256: Any = Field(default=None, description="refused: goes with a policy body")


class ReleaseOutcome(Model):
    """The workflow's result: the final status, whose ``audit_length`` and ``audit_head`` name the
    release's complete audit chain.

    The chain itself is in the audit store (the registry's database, written before the release
    ends, its heads signed and anchored): :func:`gatekeeper.dossier.collect.completed_chain`
    reads it there and accepts it only as the chain the status names. ``audit`` carries the
    chain only in the results of releases that ended before issue 16 (and is empty otherwise):
    carrying it again at the end cost every release's history the whole chain a second time.
    """

    status: ReleaseStatus
    audit: list[AuditEvent] = Field(default_factory=list)

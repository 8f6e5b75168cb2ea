"""One view of a release's status, computed once and formatted three ways.

The Temporal UI's details (:mod:`gatekeeper.status_details`, Markdown), the terminal
(:mod:`gatekeeper.cli.render`, ``release watch`` and ``review inbox``) and the dossier
(:mod:`gatekeeper.dossier.document`) each format a :class:`StatusView`; what is worth showing is
decided here, once: how far the pipeline got, what the release waits for and from whom, the open
gate's clocks and approvals, the government's receipt, window and concerns, which holds and
suspensions are in force, which evidence fails, the grants counted. A renderer chooses only how
it reads (symbols, labels, time format, escaping) and, for a current view, to leave out history
(lifted holds, resolved suspensions) that the dossier keeps.

Pure (standard library and the models, no I/O): the release workflow builds it in its sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.models.enums import ReleaseState, StageStatus
from gatekeeper.models.status import (
    Concern,
    DelayRecord,
    Delegation,
    GrantSummary,
    HoldRecord,
    ReleaseStatus,
    StageRecord,
    Suspension,
)

#: Stages that are behind the release (counted as progress).
FINISHED = (StageStatus.DONE, StageStatus.SKIPPED)


@dataclass(frozen=True)
class Waiting:
    """What the release waits for, from whom (roles first, then people), since and until when."""

    what: str
    roles: tuple[str, ...]
    people: tuple[str, ...]
    since: datetime
    until: datetime | None

    @property
    def who(self) -> tuple[str, ...]:
        return (*self.roles, *self.people)


@dataclass(frozen=True)
class Approval:
    """A valid approval at the open gate: by whom, for whom, in which role."""

    person: str
    on_behalf_of: str | None
    role: str

    @property
    def who(self) -> str:
        """Whose approval it counts as (the one represented, for a delegate)."""
        return self.on_behalf_of or self.person


@dataclass(frozen=True)
class OpenGate:
    """The gate the release is at, while open: its clocks and who already approved."""

    stage: str
    opened_at: datetime
    deadline_at: datetime | None
    reminders_sent: int
    escalated_at: datetime | None
    approvals: tuple[Approval, ...]

    def approved_by(self, person: str) -> bool:
        """Whether ``person`` already approved here (themselves, or through a delegate)."""
        return any(person in (a.person, a.on_behalf_of) for a in self.approvals)


@dataclass(frozen=True)
class DecisionRow:
    """One decision recorded at a gate, as a row: who, as what, when, still valid or why not."""

    stage: str
    kind: str
    person: str
    on_behalf_of: str | None
    role: str
    at: datetime
    valid: bool
    invalidated_reason: str
    signed: bool
    comment: str
    #: How it was signed when known ("CLI key", "passkey", "gateway (SSO <issuer> <subject>)":
    #: ``gatekeeper.dossier.model.signature_kinds`` of the audit chain); "" when not given.
    signed_with: str = ""

    @property
    def by(self) -> str:
        return self.person + (f" (for {self.on_behalf_of})" if self.on_behalf_of else "")


@dataclass(frozen=True)
class Government:
    """The government's part: receipt, testing window, clearance, delays and concerns."""

    receipt_id: str | None
    clearinghouse: str
    received_at: datetime | None
    window_opened_at: datetime | None
    window_original_ends_at: datetime | None
    window_ends_at: datetime | None
    window_closed_at: datetime | None
    cleared_at: datetime | None
    cleared_by: str | None
    delays: tuple[DelayRecord, ...]
    concerns: tuple[Concern, ...]

    @property
    def cleared_early(self) -> bool:
        """Whether the window ended at a clearance, before its scheduled end."""
        closed, ends = self.window_closed_at, self.window_ends_at
        return (
            self.cleared_at is not None
            and closed is not None
            and ends is not None
            and closed < ends
        )

    @property
    def window_end(self) -> datetime | None:
        """When the window ended (a clearance, or its end reached) or, still open, is to end:
        what "window ends" shows (an early clearance must not show the extended date)."""
        return self.window_closed_at if self.window_closed_at is not None else self.window_ends_at

    @property
    def involved(self) -> bool:
        """Whether the government has the release yet (a receipt, or its window opened)."""
        return self.receipt_id is not None or self.window_opened_at is not None


@dataclass(frozen=True)
class EvidenceFailure:
    """An evidence item that blocks every gate until an amend fixes it."""

    id: str
    result: str
    detail: str


@dataclass(frozen=True)
class StatusView:
    """Everything any of the three renderers shows of a release, decided once."""

    release_id: str
    model: str
    version: str
    state: ReleaseState
    outcome: str
    risk_tier: str
    covered_model: str
    submitter: str
    policy_id: str
    policy_version: str
    policy_sha256: str
    started_at: datetime
    ended_at: datetime | None
    stage: str | None
    stages: tuple[StageRecord, ...]
    waiting: Waiting | None
    open_gate: OpenGate | None
    decisions: tuple[DecisionRow, ...]
    government: Government
    holds: tuple[HoldRecord, ...]
    suspensions: tuple[Suspension, ...]
    delegations: tuple[Delegation, ...]
    evidence_failures: tuple[EvidenceFailure, ...]
    grants: GrantSummary
    audit_head: str
    audit_length: int

    @property
    def headline(self) -> str:
        return f"{self.model} {self.version}"

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    @property
    def finished(self) -> int:
        """How many stages are behind the release (done or skipped)."""
        return sum(1 for s in self.stages if s.status in FINISHED)

    @property
    def active_holds(self) -> tuple[HoldRecord, ...]:
        return tuple(h for h in self.holds if h.released_at is None)

    @property
    def active_suspensions(self) -> tuple[Suspension, ...]:
        """Orders in force that suspend the release (it waits before granting and launching)."""
        return tuple(s for s in self.suspensions if s.lifted_at is None and not s.per_person)

    @property
    def per_person_orders(self) -> tuple[Suspension, ...]:
        """Orders in force that access checks enforce person by person (the release goes on)."""
        return tuple(s for s in self.suspensions if s.lifted_at is None and s.per_person)


def view(
    status: ReleaseStatus, signed_with: Mapping[tuple[str, str, str, str], str] | None = None
) -> StatusView:
    """The view of ``status`` every renderer formats; ``signed_with`` (from the audit chain:
    (actor, action, stage, key id) -> kind) names how each signed decision was signed."""
    spec = status.spec
    awaiting = status.awaiting
    gov = status.government
    return StatusView(
        release_id=status.release_id,
        model=spec.model.name,
        version=spec.model.version,
        state=status.state,
        outcome=status.outcome,
        risk_tier=spec.risk_tier.value,
        covered_model=spec.covered_model.value,
        submitter=spec.submitter,
        policy_id=status.policy_id,
        policy_version=status.policy_version,
        policy_sha256=status.policy_sha256,
        started_at=status.started_at,
        ended_at=status.ended_at,
        stage=status.stage,
        stages=tuple(status.stages),
        waiting=Waiting(
            what=awaiting.what,
            roles=tuple(awaiting.roles),
            people=tuple(awaiting.people),
            since=awaiting.since,
            until=awaiting.until,
        )
        if awaiting
        else None,
        open_gate=_open_gate(status),
        decisions=tuple(
            DecisionRow(
                stage=stage_id,
                kind=d.kind.value,
                person=d.person,
                on_behalf_of=d.on_behalf_of,
                role=d.role,
                at=d.at,
                valid=d.valid,
                invalidated_reason=d.invalidated_reason,
                signed=d.signature is not None or d.key_id is not None,
                comment=d.comment,
                signed_with=(signed_with or {}).get(
                    (d.person, d.kind.value, stage_id, d.key_id or ""), ""
                ),
            )
            for stage_id, gate in status.gates.items()
            for d in gate.decisions
        ),
        government=Government(
            receipt_id=gov.receipt.receipt_id if gov.receipt else None,
            clearinghouse=gov.receipt.clearinghouse if gov.receipt else "",
            received_at=gov.receipt.received_at if gov.receipt else None,
            window_opened_at=gov.window_opened_at,
            window_original_ends_at=gov.window_original_ends_at,
            window_ends_at=gov.window_ends_at,
            window_closed_at=gov.window_closed_at,
            cleared_at=gov.cleared_at,
            cleared_by=gov.cleared_by,
            delays=tuple(gov.delays),
            concerns=tuple(gov.concerns),
        ),
        holds=tuple(status.holds),
        suspensions=tuple(status.suspensions),
        delegations=tuple(status.delegations),
        evidence_failures=tuple(
            EvidenceFailure(id=c.id, result=c.result, detail=c.detail)
            for c in status.evidence_checks
            if c.failed
        ),
        grants=status.grant_summary,
        audit_head=status.audit_head,
        audit_length=status.audit_length,
    )


def _open_gate(status: ReleaseStatus) -> OpenGate | None:
    gate = status.gates.get(status.stage or "")
    if gate is None or gate.closed_at is not None:
        return None
    return OpenGate(
        stage=gate.stage,
        opened_at=gate.opened_at,
        deadline_at=gate.deadline_at,
        reminders_sent=gate.reminders_sent,
        escalated_at=gate.escalated_at,
        approvals=tuple(
            Approval(person=d.person, on_behalf_of=d.on_behalf_of, role=d.role)
            for d in gate.valid_approvals()
        ),
    )

"""The release ledger: all of a release's state and every change to it, deterministically.

The ledger is what the workflow *knows*. It never waits, sleeps, calls an activity or reads a
clock: ``now`` is always passed in (the workflow passes ``workflow.now()``). Each change appends
an audit event and, where people must hear about it, a :class:`Notice` that the workflow sends.
Keeping this free of Temporal calls lets the rules be tested directly and read as one story.

Decisions (approve, amend, government responses, operator actions) are made by the deciders of
:mod:`gatekeeper.ledger.deciders`, one object per decision path, each holding a ``Ledger``; what
each stage kind does to the ledger (gates, the government window, grants, the launch) lives with
the kind in :mod:`gatekeeper.stages`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any, Self

from gatekeeper.audit import AuditChain
from gatekeeper.canonical import digest_of
from gatekeeper.ledger.notices import Notice
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.enums import (
    NotificationEvent,
    ReleaseState,
    StageStatus,
)
from gatekeeper.models.installed import InstalledPolicy
from gatekeeper.models.io import EvidenceCheckResult, RevokeResult
from gatekeeper.models.policy import (
    Policy,
    Stage,
)
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import (
    Awaiting,
    HoldRecord,
    ReleaseStatus,
    StageRecord,
)
from gatekeeper.rules import (
    BUDGET_OF,
    FINISHING,
    FINISHING_MAX_BYTES,
    PAYLOAD,
    PAYLOAD_BUDGET,
    REPEATS,
    REQUEST_BUDGETS,
    Refusal,
    Rule,
    refuse,
)
from gatekeeper.text import when

SYSTEM = "gatekeeper"
#: The role every held release awaits (``ops resume``, ``ops withdraw``).
OPERATOR = "operator"
#: Evidence refusals an amend's answer names in full; further failing items are named by id.
SHOWN_REFUSALS = 3


class IntegrityError(Exception):
    """The workflow input is inconsistent (e.g. the policy does not match its recorded hash)."""


class Ledger:
    """State, audit, notices, holds and stage records; the deciders of
    :mod:`gatekeeper.ledger.deciders` change it on people's requests."""

    def __init__(self, spec: ReleaseSpec, installed: InstalledPolicy, now: datetime) -> None:
        """A release of ``spec`` under ``installed``, the version the worker's store resolved."""
        if digest_of(installed.policy.model_dump(mode="json")) != installed.sha256:
            raise IntegrityError("the policy snapshot does not match its recorded sha256")
        self.policy: Policy = installed.policy
        self.installed_by = installed.installed_by
        self.installed_at = installed.installed_at
        self.chain = AuditChain(spec.release_id)
        self.notices: list[Notice] = []
        self.used_nonces: set[str] = set()
        #: The attestation of the signed request being applied: the first audit event the
        #: request appends carries it (``details["attestation"]``), see :meth:`audit`.
        self.attesting: dict[str, Any] | None = None
        #: Moves each time the evidence to verify changes (an amend that changes a digest): a
        #: verification result counts only for the version it was asked for (see
        #: :meth:`evidence_current`), so a slower, older verification never overwrites a newer one.
        self.evidence_version = 0
        #: Whether the release follows issue 14's rules for what it awaits (the workflow sets it
        #: under its patch, so releases started before keep their histories): a held release
        #: awaits ``operator`` wherever it is held, and ``awaiting.since`` is when the parties it
        #: awaits were first awaited at this stage, not when the sentence last changed.
        self.operators_awaited = False
        #: When each party (``role:ID``, ``person:ID``, or ``""`` for a wait on no one) was first
        #: awaited at the current stage; cleared when a stage starts or ends.
        self.first_awaited: dict[str, datetime] = {}
        #: Whether a ``foreign_persons`` order is recorded as enforced person by person (the
        #: release goes on granting and launching; see ``SuspensionDecider``). The workflow sets
        #: it under its ``per-person-orders`` patch: releases started before it wait as they did.
        self.per_person_orders = False
        self.status = ReleaseStatus(
            release_id=spec.release_id,
            spec=spec,
            policy_id=installed.policy.policy_id,
            policy_version=installed.policy.version,
            policy_sha256=installed.sha256,
            stages=[StageRecord(id=s.id, kind=s.kind, title=s.label) for s in self.policy.stages],
            started_at=now,
            updated_at=now,
            audit_head=self.chain.head,
        )

    # --- basics ---------------------------------------------------------------------------

    @property
    def spec(self) -> ReleaseSpec:
        return self.status.spec

    def is_terminal(self) -> bool:
        return self.status.state.terminal

    def is_held(self) -> bool:
        return bool(self.status.active_holds())

    def is_blocked(self) -> bool:
        """Held or suspended: the pipeline does not move forward."""
        return self.is_held() or bool(self.status.active_suspensions())

    def audit(
        self,
        now: datetime,
        actor: str,
        action: str,
        details: dict[str, Any] | None = None,
        *,
        stage: str | None = None,
    ) -> AuditEvent:
        if self.attesting is not None:
            details = {**(details or {}), "attestation": self.attesting}
            self.attesting = None
        event = self.chain.append(
            at=now,
            actor=actor,
            action=action,
            stage=stage if stage is not None else self.status.stage,
            details=details,
        )
        self.status.audit_head = event.hash
        self.status.audit_length = len(self.chain)
        self.status.updated_at = now
        return event

    def notify(
        self,
        event: NotificationEvent,
        audit_event: AuditEvent,
        subject: str,
        body: str,
        **extra: Any,
    ) -> None:
        extra.setdefault("stage", audit_event.stage)
        self.notices.append(
            Notice(
                event=event,
                subject=f"[{self.status.release_id}] {subject}",
                body=body,
                audit_seq=audit_event.seq,
                **extra,
            )
        )

    def take_notices(self) -> list[Notice]:
        taken, self.notices = self.notices, []
        return taken

    def refresh_state(self) -> None:
        """Derive the non-terminal state from holds and suspensions."""
        if self.is_terminal():
            return
        if self.is_held():
            self.status.state = ReleaseState.HELD
        elif self.status.active_suspensions():
            self.status.state = ReleaseState.SUSPENDED
        else:
            self.status.state = ReleaseState.ACTIVE

    @property
    def title(self) -> str:
        spec = self.spec
        return f"{spec.model.name} {spec.model.version}"

    # --- the request budget ---------------------------------------------------------------

    def spent(self, budget: str) -> bool:
        return self.status.requests.get(budget, 0) >= REQUEST_BUDGETS[budget]

    def charge(self, budget: str, size: int) -> None:
        """Count one accepted request (the handler ran) of ``size`` bytes against ``budget``."""
        self.status.requests[budget] = self.status.requests.get(budget, 0) + 1
        self.status.requests[PAYLOAD] = self.status.requests.get(PAYLOAD, 0) + size

    def trial(self, change: Callable[[Self], object]) -> Refusal | tuple[bool, str]:
        """Run ``change`` on a copy of the ledger: the refusal it raises, or whether it changed
        something (appended an audit event) and its message."""
        copied = copy.copy(self)
        copied.status = self.status.model_copy(deep=True)
        copied.chain = AuditChain(self.chain.release_id, self.chain.events)
        copied.notices = []
        copied.used_nonces = set(self.used_nonces)
        copied.first_awaited = dict(self.first_awaited)
        try:
            message = change(copied)
        except Refusal as refusal:
            return refusal
        return len(copied.chain) > len(self.chain), str(message)

    def screen(self, request: str, kind: str, size: int, change: Callable[[Self], object]) -> None:
        """The validator's last check, after the request's own: refuse (unrecorded) a request
        past its budget, a repeat that would change nothing, and, once the ``refused`` budget
        is spent, one the handler would refuse. ``kind`` is the request's finer kind where one
        update has several (a government response's kind), else the update's name; ``size`` is
        the request's JSON in bytes."""
        budget = BUDGET_OF[request]
        finishing = request in FINISHING or kind in FINISHING
        spent = ""
        if self.spent(budget):
            spent = f"its {REQUEST_BUDGETS[budget]} {budget} requests"
        elif not finishing and self.status.requests.get(PAYLOAD, 0) + size > PAYLOAD_BUDGET:
            spent = f"{PAYLOAD_BUDGET // 1024} KB of requests"
        if spent and not finishing:
            raise refuse(
                Rule.REQUEST_BUDGET_EXHAUSTED,
                f"release {self.status.release_id} has accepted {spent}; only requests "
                "that finish it (approve, reject, resume, restore, clear, withdraw) are taken",
            )
        if spent and size > FINISHING_MAX_BYTES:
            raise refuse(
                Rule.REQUEST_BUDGET_EXHAUSTED,
                f"release {self.status.release_id} has accepted {spent}; past it a request "
                f"must be under {FINISHING_MAX_BYTES // 1024} KB (this one is {size // 1024} KB)",
            )
        outcome = self.trial(change)
        if isinstance(outcome, Refusal):
            if not outcome.audited or outcome.rule in REPEATS or self.spent("refused"):
                raise refuse(outcome.rule, outcome.message)
            return
        changed, message = outcome
        if not changed:
            raise refuse(Rule.UNCHANGED, f"nothing to change: {message}")

    # --- holds ----------------------------------------------------------------------------

    def release_holds(self, holds: list[HoldRecord], now: datetime, by: str, reason: str) -> str:
        """Lift ``holds`` (an operator's resume, or their time ran out)."""
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
        """A missed deadline's hold was lifted: the open gate's deadline restarts from now."""
        # The gate's module builds on this one, so it is imported when a hold is lifted.
        from gatekeeper.stages import approval_gate

        found = approval_gate.open_gate_for_decisions(self)
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

    # --- start, stages, end ---------------------------------------------------------------

    def start(self, now: datetime) -> None:
        spec = self.spec
        event = self.audit(
            now,
            spec.submitter,
            "release_started",
            {
                "model": spec.model.name,
                "version": spec.model.version,
                "artifact_sha256": spec.artifact.sha256,
                "risk_tier": spec.risk_tier.value,
                "covered_model": spec.covered_model.value,
                "evidence": {e.id: e.sha256 for e in spec.evidence},
                "policy_id": self.policy.policy_id,
                "policy_version": self.policy.version,
                "policy_sha256": self.status.policy_sha256,
                "policy_installed_by": self.installed_by,
                "policy_installed_at": self.installed_at.isoformat(),
            },
        )
        self.notify(
            NotificationEvent.RELEASE_STARTED,
            event,
            f"Release of {self.title} started",
            f"{spec.submitter} started the release of {self.title} (risk tier "
            f"{spec.risk_tier.value}, covered model: {spec.covered_model.value}) under policy "
            f"{self.policy.policy_id} v{self.policy.version}.",
            concerned=[spec.submitter],
        )

    def evidence_current(self, version: int) -> bool:
        """Whether a verification asked for at evidence ``version`` is still about the
        release's evidence (no amend changed a digest since)."""
        return version == self.evidence_version

    def record_evidence_checks(
        self, result: EvidenceCheckResult, now: datetime, version: int | None = None
    ) -> bool:
        """Record a verification's checks, unless it was asked for at an older evidence
        ``version`` (then a newer verification is on its way and this one changes nothing);
        whether it was recorded. ``None``: record it whatever the version (histories recorded
        before versions existed)."""
        if version is not None and not self.evidence_current(version):
            return False
        self.status.evidence_checks = result.checks
        failures = result.failures
        event = self.audit(
            now,
            SYSTEM,
            "evidence_verified",
            {c.id: c.result for c in result.checks},
        )
        if failures:
            lines = "; ".join(f"{c.id}: {c.result} {c.detail}".strip() for c in failures)
            self.notify(
                NotificationEvent.CHANGES_REQUESTED,
                event,
                "Evidence does not match its digest",
                f"Gatekeeper could not verify: {lines}. No gate closes until an amend fixes it.",
                action_needed="Amend the release with the correct evidence or digests.",
                concerned=[self.spec.submitter],
            )
        return True

    def evidence_failures(self) -> list[str]:
        # A refusal's detail is its one-line rule (it says nothing about the file): the first few
        # are shown in full, the rest by id, so an amend's answer stays small (the status has all).
        failing = [c for c in self.status.evidence_checks if c.failed]
        return [
            f"{c.id} ({c.result}: {c.detail})"
            if c.result == "refused" and i < SHOWN_REFUSALS
            else f"{c.id} ({c.result})"
            for i, c in enumerate(failing)
        ]

    def applies(self, stage: Stage) -> bool:
        return self.spec.covered_model in stage.applies_to

    def enter_stage(self, stage: Stage, now: datetime) -> None:
        record = self._record(stage.id)
        record.status = StageStatus.CURRENT
        record.started_at = now
        self.status.stage = stage.id
        self.first_awaited.clear()
        self.audit(now, SYSTEM, "stage_entered", {"kind": stage.kind.value}, stage=stage.id)

    def skip_stage(self, stage: Stage, now: datetime) -> None:
        record = self._record(stage.id)
        record.status = StageStatus.SKIPPED
        record.note = f"not applicable to covered_model={self.spec.covered_model.value}"
        self.audit(now, SYSTEM, "stage_skipped", {"reason": record.note}, stage=stage.id)

    def finish_stage(self, stage: Stage, now: datetime, note: str = "") -> None:
        record = self._record(stage.id)
        record.status = StageStatus.DONE
        record.ended_at = now
        record.note = note
        self.status.awaiting = None
        self.first_awaited.clear()
        self.audit(now, SYSTEM, "stage_completed", {"note": note}, stage=stage.id)

    def _record(self, stage_id: str) -> StageRecord:
        record = self.status.stage_record(stage_id)
        if record is None:  # the stages list is built from the same policy
            raise IntegrityError(f"stage {stage_id} is not in the release's pipeline")
        return record

    def await_(
        self,
        what: str,
        now: datetime,
        *,
        roles: list[str] | None = None,
        people: list[str] | None = None,
        until: datetime | None = None,
    ) -> None:
        roles, people = list(roles or []), list(people or [])
        if not self.operators_awaited:
            current = self.status.awaiting
            since = current.since if current and current.what == what else now
        else:
            holds = self.status.active_holds()
            if holds and OPERATOR not in roles:
                # Nothing advances until the hold lifts, so whoever else must act, an operator
                # must too: their inbox and ``AwaitingRoles="operator"`` find every held release.
                roles = [OPERATOR, *roles]
                what = f"the release to resume ({'; '.join(h.reason for h in holds)}); meanwhile {what}"
            since = self.awaited_since(roles, people, now)
        self.status.awaiting = Awaiting(
            what=what, roles=roles, people=people, since=since, until=until
        )

    def awaited_since(self, roles: list[str], people: list[str], now: datetime) -> datetime:
        """Since when the release has awaited these parties at this stage: the earliest time any
        of them was first awaited here (a wait on no one counts as one party). What the release
        says it waits for may change (a concern raised, an approval counted, a delay) without
        the wait starting again; a new party (a hold's operator, the submitter asked to amend)
        starts its own clock."""
        parties = [f"role:{r}" for r in roles] + [f"person:{p}" for p in people] or [""]
        for party in parties:
            self.first_awaited.setdefault(party, now)
        return min(self.first_awaited[party] for party in parties)

    def end(self, state: ReleaseState, now: datetime, outcome: str, actor: str) -> AuditEvent:
        """Make the release terminal. Cleanup (revoking grants) is the workflow's next step."""
        self.status.state = state
        self.status.outcome = outcome
        self.status.ended_at = now
        self.status.awaiting = None
        record = self.status.stage_record(self.status.stage or "")
        if (
            record is not None
            and record.status is StageStatus.CURRENT
            and state is not ReleaseState.LAUNCHED
        ):
            record.ended_at = now
            record.note = f"{state.value}: {outcome}"
        return self.audit(now, actor, f"release_{state.value}", {"outcome": outcome})

    def record_revocations(self, result: RevokeResult, now: datetime, reason: str) -> None:
        """Every grant the release held is revoked (the result names at most a sample)."""
        summary = self.status.grant_summary
        for grant in self.status.grants:
            if grant.status != "revoked":
                grant.status = "revoked"
                grant.changed_at = now
                grant.reason = reason
        if result.count:
            summary.revoked += result.count
            summary.active = summary.suspended = 0
            event = self.audit(
                now,
                SYSTEM,
                "access_revoked",
                {"count": result.count, "grants": sorted(result.revoked), "reason": reason},
            )
            self.notify(
                NotificationEvent.PARTNER_ACCESS_REVOKED,
                event,
                f"Early access to {self.title} revoked",
                f"{result.count} partner grant(s) were revoked: {reason}.",
                concerned=[self.spec.submitter],
            )

    def unrevoked_grants(self) -> int:
        """How many grants the release still holds (active or suspended), by the summary."""
        summary = self.status.grant_summary
        return summary.active + summary.suspended

    def notify_end(self, state: ReleaseState, now: datetime, reason: str) -> None:
        """Tell the people concerned that the release ended (after :meth:`end`)."""
        event = self.chain.events[-1]
        names = {
            ReleaseState.REJECTED: NotificationEvent.REJECTED,
            ReleaseState.WITHDRAWN: NotificationEvent.WITHDRAWN,
            ReleaseState.LAUNCHED: NotificationEvent.LAUNCHED,
        }
        self.notify(
            names[state],
            event,
            f"{self.title} {state.value}",
            f"The release of {self.title} was {state.value} at {when(now)}: {reason}.",
            concerned=[self.spec.submitter],
        )

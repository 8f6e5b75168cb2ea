"""The release ledger: all of a release's state and every change to it, deterministically.

The ledger is what the workflow *knows*. It never waits, sleeps, calls an activity or reads a
clock: ``now`` is always passed in (the workflow passes ``workflow.now()``). Each change appends
an audit event and, where people must hear about it, a :class:`Notice` that the workflow sends.
Keeping this free of Temporal calls lets the rules be tested directly and read as one story.

Decisions (approve, amend, government responses, operator actions) are made by the deciders of
:mod:`gatekeeper.ledger.deciders`, one object per decision path, each holding a ``Ledger``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
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
from gatekeeper.models.io import GRANT_SAMPLE, EvidenceCheckResult, GrantResult, RevokeResult
from gatekeeper.models.policy import (
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    GovernmentWindowStage,
    Policy,
    Stage,
)
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import (
    Awaiting,
    GateState,
    GovernmentReceipt,
    HoldRecord,
    ReleaseStatus,
    StageRecord,
)
from gatekeeper.rules import (
    APPROVAL_EXPIRY,
    BUDGET_OF,
    FINISHING,
    FINISHING_MAX_BYTES,
    PAYLOAD,
    PAYLOAD_BUDGET,
    REPEATS,
    REQUEST_BUDGETS,
    QuorumProgress,
    Refusal,
    Rule,
    awaited_at_gate,
    covered_digests,
    quorum_progress,
    refuse,
)
from gatekeeper.text import when

SYSTEM = "gatekeeper"
#: Evidence refusals an amend's answer names in full; further failing items are named by id.
SHOWN_REFUSALS = 3


class IntegrityError(Exception):
    """The workflow input is inconsistent (e.g. the policy does not match its recorded hash)."""


class Ledger:
    """State, audit, notices, holds, stages and gates; the deciders of
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
        current = self.status.awaiting
        since = current.since if current and current.what == what else now
        self.status.awaiting = Awaiting(
            what=what, roles=roles or [], people=people or [], since=since, until=until
        )

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

    # --- approval gates -------------------------------------------------------------------

    def open_gate(self, stage: Stage, settings: GateSettings, now: datetime) -> GateState:
        gate = GateState(
            stage=stage.id,
            opened_at=now,
            deadline_at=now + settings.deadline if settings.deadline else None,
        )
        self.status.gates[stage.id] = gate
        event = self.audit(
            now,
            SYSTEM,
            "gate_opened",
            {"quorum": self.progress(stage.id, settings).describe()},
            stage=stage.id,
        )
        roles = self.progress(stage.id, settings).awaited_roles
        self._await_gate(stage.id, settings, now)
        self.notify(
            NotificationEvent.GATE_WAITING,
            event,
            f"{stage.label}: your decision is needed",
            f"{self.title} is waiting at {stage.label}. It needs "
            f"{self.progress(stage.id, settings).describe()}.",
            action_needed=f"Review and run `gatekeeper review approve {self.status.release_id} "
            f"--as <you> --role <role>` (or reject / request-changes).",
            due=gate.deadline_at,
            roles=roles,
            stage=stage.id,
        )
        return gate

    def gate(self, stage_id: str) -> GateState | None:
        return self.status.gates.get(stage_id)

    def open_gate_for_decisions(self) -> tuple[Stage, GateSettings, GateState] | None:
        """The current stage's gate, if it is open for decisions right now."""
        stage_id = self.status.stage
        if stage_id is None:
            return None
        stage = self.policy.stage(stage_id)
        gate = self.status.gates.get(stage_id)
        if stage is None or gate is None or gate.closed_at is not None:
            return None
        if not isinstance(stage, ApprovalGateStage | AccessGrantStage):
            return None
        return stage, stage, gate

    def progress(self, stage_id: str, settings: GateSettings) -> QuorumProgress:
        gate = self.status.gates.get(stage_id)
        approvals = gate.valid_approvals() if gate else []
        return quorum_progress(settings.quorum, approvals)

    def gate_blockers(self, stage_id: str, settings: GateSettings) -> list[str]:
        """Why the gate cannot close yet (empty when it can)."""
        gate = self.status.gates[stage_id]
        blockers = []
        progress = self.progress(stage_id, settings)
        if not progress.met:
            blockers.append(f"quorum: {progress.describe()}")
        for request in gate.open_change_requests():
            blockers.append(f"changes requested by {request.person}")
        blockers.extend(f"evidence {item}" for item in self.evidence_failures())
        blockers.extend(
            f"authorship of {item} not attested" for item in self.unattested_authorship(settings)
        )
        blockers.extend(f"held: {h.reason}" for h in self.status.active_holds())
        return blockers

    def unattested_authorship(self, settings: GateSettings) -> list[str]:
        """Evidence the gate covers whose authorship is not attested at its current digest,
        when the policy requires attested authorship."""
        if not self.policy.require_attested_authorship:
            return []
        covered = covered_digests(settings, self.spec)
        return [
            e.id
            for e in self.spec.evidence
            if e.id in covered
            and (
                (attested := self.status.authorship.get(e.id)) is None
                or attested.sha256 != e.sha256
            )
        ]

    def _await_gate(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        gate = self.status.gates[stage_id]
        progress = self.progress(stage_id, settings)
        open_requests = gate.open_change_requests()
        holds = self.status.active_holds()
        if holds:
            # Decisions are refused while held, so the reviewers are not who it waits for: an
            # operator's inbox and `AwaitingRoles="operator"` must find it, a reviewer's must not.
            self.await_(
                f"the release to resume at {stage_id} ({'; '.join(h.reason for h in holds)})",
                now,
                roles=["operator"],
                until=min((h.until for h in holds if h.until), default=None),
            )
            return
        if open_requests or self.evidence_failures():
            self.await_(
                "an amend from the submitter (changes requested)",
                now,
                roles=[],
                people=[self.spec.submitter],
                until=gate.deadline_at,
            )
            return
        awaited = awaited_at_gate(self.policy, self.status, settings, gate)
        stuck = "; no one left may approve" if awaited.stuck else ""
        self.await_(
            f"approval at {stage_id}: {progress.describe()}{stuck}",
            now,
            roles=awaited.roles,
            people=awaited.people,
            until=gate.deadline_at,
        )

    def refresh_gate(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        """Expire stale approvals and recompute what the gate awaits."""
        gate = self.status.gates[stage_id]
        if settings.approval_ttl is not None:
            for decision in gate.decisions:
                if APPROVAL_EXPIRY.expired(decision, settings, now):
                    decision.valid = False
                    decision.invalidated_reason = APPROVAL_EXPIRY.reason(settings)
                    event = self.audit(
                        now,
                        SYSTEM,
                        "approval_expired",
                        {"person": decision.person, "role": decision.role},
                        stage=stage_id,
                    )
                    self.notify(
                        NotificationEvent.APPROVALS_INVALIDATED,
                        event,
                        f"Your approval at {stage_id} expired",
                        f"{decision.person}'s approval of {self.title} at {stage_id} "
                        f"({when(decision.at)}) expired before the gate closed.",
                        action_needed="Review again and approve if it still holds.",
                        concerned=[decision.person],
                    )
        if gate.closed_at is None and not self.is_terminal():
            self._await_gate(stage_id, settings, now)

    def next_expiry(self, stage_id: str, settings: GateSettings) -> datetime | None:
        return APPROVAL_EXPIRY.next_expiry(self.status.gates[stage_id], settings)

    def close_gate(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        gate = self.status.gates[stage_id]
        gate.closed_at = now
        approvers = [d.on_behalf_of or d.person for d in gate.valid_approvals()]
        event = self.audit(now, SYSTEM, "gate_passed", {"approvers": approvers}, stage=stage_id)
        self.notify(
            NotificationEvent.GATE_PASSED,
            event,
            f"{stage_id} passed",
            f"{self.title} passed {stage_id} with the approval of {', '.join(approvers) or 'nobody (no quorum)'}.",
            concerned=[self.spec.submitter, *approvers],
        )

    def remind(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        gate = self.status.gates[stage_id]
        gate.reminders_sent += 1
        progress = self.progress(stage_id, settings)
        event = self.audit(
            now,
            SYSTEM,
            "reminder_sent",
            {"count": gate.reminders_sent, "awaiting": progress.awaited_roles},
            stage=stage_id,
        )
        self.notify(
            NotificationEvent.REMINDER,
            event,
            f"Reminder: {stage_id} still needs you",
            f"{self.title} has waited at {stage_id} since {when(gate.opened_at)}; it still needs "
            f"{progress.describe()}.",
            action_needed="Review and decide.",
            due=gate.deadline_at,
            roles=progress.awaited_roles,
            stage=stage_id,
        )

    def escalate(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        gate = self.status.gates[stage_id]
        gate.escalated_at = now
        progress = self.progress(stage_id, settings)
        event = self.audit(now, SYSTEM, "escalated", {"to": settings.escalate_to}, stage=stage_id)
        self.notify(
            NotificationEvent.ESCALATION,
            event,
            f"Escalation: {stage_id} has waited since {when(gate.opened_at)}",
            f"{self.title} is stuck at {stage_id}; it still needs {progress.describe()}.",
            action_needed="Find the missing reviewers or decide how to proceed.",
            due=gate.deadline_at,
            roles=list(settings.escalate_to),
            stage=stage_id,
        )

    def deadline_passed(self, stage_id: str, settings: GateSettings, now: datetime) -> None:
        """The gate's deadline passed: fail closed (reject) or hold for an operator."""
        gate = self.status.gates[stage_id]
        reason = f"{stage_id} missed its deadline {when(gate.deadline_at)}"
        gate.deadline_at = None
        event = self.audit(
            now, SYSTEM, "deadline_missed", {"action": settings.on_deadline}, stage=stage_id
        )
        self.notify(
            NotificationEvent.DEADLINE_MISSED,
            event,
            f"{stage_id} missed its deadline",
            f"{self.title}: {reason}. Policy action: {settings.on_deadline}.",
            action_needed=(
                "Nothing: the release was rejected (fail closed)."
                if settings.on_deadline == "reject"
                else "Operators: chase the missing reviewers, then `gatekeeper ops resume` "
                "(the deadline restarts) or `gatekeeper ops withdraw`."
            ),
            roles=["operator", *settings.escalate_to],
            concerned=[self.spec.submitter],
        )
        if settings.on_deadline == "reject":
            self.end(ReleaseState.REJECTED, now, reason, SYSTEM)
            self._notify_end(ReleaseState.REJECTED, now, reason)
        else:
            self.status.holds.append(HoldRecord(kind="deadline", by=SYSTEM, reason=reason, at=now))
            self.refresh_state()

    def _notify_end(self, state: ReleaseState, now: datetime, reason: str) -> None:
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

    # --- government -----------------------------------------------------------------------

    def record_receipt(self, receipt: GovernmentReceipt, now: datetime) -> None:
        self.status.government.receipt = receipt
        event = self.audit(
            now,
            SYSTEM,
            "government_submitted",
            {"receipt_id": receipt.receipt_id, "clearinghouse": receipt.clearinghouse},
        )
        self.notify(
            NotificationEvent.GOVERNMENT_SUBMITTED,
            event,
            f"{self.title} submitted for government testing",
            f"Submitted to the {receipt.clearinghouse} clearinghouse; receipt {receipt.receipt_id}.",
            roles=["government_liaison"],
            concerned=[self.spec.submitter],
        )

    def window_stage(self) -> GovernmentWindowStage | None:
        for stage in self.policy.stages:
            if isinstance(stage, GovernmentWindowStage) and self.applies(stage):
                return stage
        return None

    def open_window(self, stage: GovernmentWindowStage, now: datetime) -> None:
        gov = self.status.government
        gov.window_opened_at = now
        gov.window_original_ends_at = now + stage.duration
        gov.window_ends_at = now + stage.duration
        event = self.audit(
            now,
            SYSTEM,
            "window_opened",
            {"ends_at": when(gov.window_ends_at), "days": stage.duration / timedelta(days=1)},
        )
        self.notify(
            NotificationEvent.WINDOW_OPENED,
            event,
            f"Government testing window opened for {self.title}",
            f"The government may test {self.title} until {when(gov.window_ends_at)}. The release "
            "does not go to partners or the public before the window ends"
            + (" or the government clears it." if stage.allow_early_clearance else "."),
            action_needed="Record the government's responses with `gatekeeper gov respond`.",
            due=gov.window_ends_at,
            roles=["government_liaison"],
        )
        self.await_window(stage, now)

    def window_blockers(
        self, stage: GovernmentWindowStage, now: datetime
    ) -> tuple[bool, list[str]]:
        """(may the window end now?, what still blocks it)."""
        gov = self.status.government
        blockers = [f"open concern {c.id}: {c.text}" for c in gov.open_concerns()]
        blockers.extend(f"held: {h.reason}" for h in self.status.active_holds())
        cleared = gov.cleared_at is not None and stage.allow_early_clearance
        elapsed = gov.window_ends_at is not None and now >= gov.window_ends_at
        return (cleared or elapsed) and not blockers, blockers

    def await_window(self, stage: GovernmentWindowStage, now: datetime) -> None:
        gov = self.status.government
        concerns = gov.open_concerns()
        if concerns:
            what = f"government concern {concerns[0].id} to be resolved"
        else:
            what = f"the government testing window (ends {when(gov.window_ends_at)})"
        self.await_(what, now, roles=["government_liaison"], until=gov.window_ends_at)

    def close_window(self, now: datetime) -> str:
        gov = self.status.government
        gov.window_closed_at = now
        if gov.cleared_at is not None and gov.window_ends_at and now < gov.window_ends_at:
            reason = f"cleared early by {gov.cleared_by} at {when(gov.cleared_at)}"
        else:
            reason = f"window elapsed at {when(gov.window_ends_at)}"
        event = self.audit(now, SYSTEM, "window_ended", {"reason": reason})
        self.notify(
            NotificationEvent.WINDOW_ENDED,
            event,
            f"Government testing window ended for {self.title}",
            f"The window ended ({reason}). Ending the window permits the next stage; it is "
            "not a government approval.",
            roles=["government_liaison"],
            concerned=[self.spec.submitter],
        )
        return reason

    # --- partner access and launch --------------------------------------------------------

    def record_grants(self, result: GrantResult, stage: AccessGrantStage, now: datetime) -> None:
        """Count every grant made; keep the first few in full (the registry keeps them all)."""
        known = {g.grant_id for g in self.status.grants}
        room = GRANT_SAMPLE - len(self.status.grants)
        fresh = [g for g in result.grants if g.grant_id not in known]
        self.status.grants.extend(fresh[: max(room, 0)])
        summary = self.status.grant_summary
        summary.total += result.count
        summary.suspended += result.suspended_count
        summary.active += result.count - result.suspended_count
        summary.partners += result.partner_count
        counts = result.cohort_counts or {}
        if not counts:
            for grant in result.grants:
                counts[grant.cohort] = counts.get(grant.cohort, 0) + 1
        for cohort, count in counts.items():
            summary.cohorts[cohort] = summary.cohorts.get(cohort, 0) + count
        if result.grants_digest:
            summary.digests.append(result.grants_digest)
        partners = sorted({g.partner_id for g in result.grants})
        event = self.audit(
            now,
            SYSTEM,
            "access_granted",
            {
                "count": result.count,
                "partners": result.partner_count,
                "cohorts": counts,
                "grants_digest": result.grants_digest,
                "grants": [g.grant_id for g in result.grants],
                "sample_partners": partners,
                "skipped": result.skipped,
            },
            stage=stage.id,
        )
        cohorts = sorted(counts)
        self.notify(
            NotificationEvent.PARTNER_ACCESS_GRANTED,
            event,
            f"Early access to {self.title} granted",
            f"{result.partner_count} vetted partner(s) in {', '.join(cohorts) or 'no cohort'} now "
            f"have early access ({result.count} grant(s)); {len(result.skipped)} not eligible.",
            concerned=[self.spec.submitter],
        )

    def launch_blockers(self) -> list[str]:
        blockers = [f"held: {h.reason}" for h in self.status.active_holds()]
        blockers.extend(
            f"suspended by order {s.order_id}" for s in self.status.active_suspensions()
        )
        blockers.extend(
            f"open government concern {c.id}" for c in self.status.government.open_concerns()
        )
        return blockers

    def launched(self, launch_id: str, now: datetime, stage: Stage) -> None:
        self.finish_stage(stage, now, f"published as {launch_id}")
        self.end(ReleaseState.LAUNCHED, now, f"published as {launch_id}", SYSTEM)
        self._notify_end(ReleaseState.LAUNCHED, now, f"published as {launch_id}")

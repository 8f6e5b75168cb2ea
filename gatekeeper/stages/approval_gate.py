"""``approval_gate``: the release waits until a quorum of distinct people approves.

Also the gate an ``access_grant`` stage ends with when it has a quorum (both stages are
:class:`~gatekeeper.models.policy.GateSettings`): the coroutine :func:`run_gate`, the gate's
transitions on the ledger (open, refresh, remind, escalate, deadline, close), its policy checks
and its sentence in ``policy show``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import (
    NotificationEvent,
    ReleaseState,
    StageKind,
    WellKnownRole,
)
from gatekeeper.models.policy import (
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    Stage,
)
from gatekeeper.models.status import GateState, HoldRecord
from gatekeeper.rules import (
    APPROVAL_EXPIRY,
    QuorumProgress,
    Scope,
    awaited_at_gate,
    covered_digests,
    feasibility,
    quorum_progress,
)
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec, show
from gatekeeper.text import when
from gatekeeper.yamlfile import FieldPath, did_you_mean

#: Shortest reminder interval a policy may set.
MIN_REMINDER_INTERVAL = timedelta(hours=1)
_GATE_CLOCKS = ("approval_ttl", "reminder_every", "escalate_after", "deadline")
_RELEASE_MANAGER = WellKnownRole.RELEASE_MANAGER.value


# --- the coroutine ---------------------------------------------------------------------------


async def run(host: StageHost, stage: ApprovalGateStage) -> str:
    return await run_gate(host, stage, stage)


async def run_gate(host: StageHost, stage: Stage, settings: GateSettings) -> str:
    """Open the gate, keep its clocks (reminders, escalation, approval expiry, deadline) and
    close it once nothing blocks it."""
    ledger = host.ledger
    gate = open_gate(ledger, stage, settings, host.now())
    host.commit()
    next_reminder = gate.opened_at + settings.reminder_every if settings.reminder_every else None
    escalate_at = gate.opened_at + settings.escalate_after if settings.escalate_after else None
    while True:
        now = host.now()
        ledger.expire_holds(now)
        refresh_gate(ledger, stage.id, settings, now)
        if ledger.is_terminal():
            return "ended"
        if next_reminder is not None and now >= next_reminder and settings.reminder_every:
            if not ledger.is_held():
                remind(ledger, stage.id, settings, now)
            while next_reminder <= now:
                next_reminder += settings.reminder_every
        if escalate_at is not None and now >= escalate_at and gate.escalated_at is None:
            escalate(ledger, stage.id, settings, now)
        if not gate_blockers(ledger, stage.id, settings):
            close_gate(ledger, stage.id, settings, now)
            host.commit()
            approvers = [d.on_behalf_of or d.person for d in gate.valid_approvals()]
            return f"approved by {', '.join(approvers)}" if approvers else "no quorum needed"
        if gate.deadline_at is not None and now >= gate.deadline_at and not ledger.is_held():
            deadline_passed(ledger, stage.id, settings, now)
            host.commit()
            continue
        host.commit()
        clocks = {
            f"Reminder for {stage.id}": next_reminder,
            f"Escalation of {stage.id}": escalate_at if gate.escalated_at is None else None,
            f"Deadline of {stage.id}": gate.deadline_at,
            f"Approval expiry at {stage.id}": next_expiry(ledger, stage.id, settings),
            "Hold ends": ledger.next_hold_expiry(),
        }
        await host.sleep_until_change(clocks)


# --- transitions -----------------------------------------------------------------------------


def open_gate(ledger: Ledger, stage: Stage, settings: GateSettings, now: datetime) -> GateState:
    gate = GateState(
        stage=stage.id,
        opened_at=now,
        deadline_at=now + settings.deadline if settings.deadline else None,
    )
    ledger.status.gates[stage.id] = gate
    event = ledger.audit(
        now,
        SYSTEM,
        "gate_opened",
        {"quorum": progress(ledger, stage.id, settings).describe()},
        stage=stage.id,
    )
    roles = progress(ledger, stage.id, settings).awaited_roles
    await_gate(ledger, stage.id, settings, now)
    ledger.notify(
        NotificationEvent.GATE_WAITING,
        event,
        f"{stage.label}: your decision is needed",
        f"{ledger.title} is waiting at {stage.label}. It needs "
        f"{progress(ledger, stage.id, settings).describe()}.",
        action_needed=f"Review and run `gatekeeper review approve {ledger.status.release_id} "
        f"--as <you> --role <role>` (or reject / request-changes).",
        due=gate.deadline_at,
        roles=roles,
        stage=stage.id,
    )
    return gate


def open_gate_for_decisions(ledger: Ledger) -> tuple[Stage, GateSettings, GateState] | None:
    """The current stage's gate, if it is open for decisions right now."""
    stage_id = ledger.status.stage
    if stage_id is None:
        return None
    stage = ledger.policy.stage(stage_id)
    gate = ledger.status.gates.get(stage_id)
    if stage is None or gate is None or gate.closed_at is not None:
        return None
    if not isinstance(stage, GateSettings):
        return None
    return stage, stage, gate


def progress(ledger: Ledger, stage_id: str, settings: GateSettings) -> QuorumProgress:
    gate = ledger.status.gates.get(stage_id)
    approvals = gate.valid_approvals() if gate else []
    return quorum_progress(settings.quorum, approvals)


def gate_blockers(ledger: Ledger, stage_id: str, settings: GateSettings) -> list[str]:
    """Why the gate cannot close yet (empty when it can)."""
    gate = ledger.status.gates[stage_id]
    blockers = []
    quorum = progress(ledger, stage_id, settings)
    if not quorum.met:
        blockers.append(f"quorum: {quorum.describe()}")
    for request in gate.open_change_requests():
        blockers.append(f"changes requested by {request.person}")
    blockers.extend(f"evidence {item}" for item in ledger.evidence_failures())
    blockers.extend(
        f"authorship of {item} not attested" for item in unattested_authorship(ledger, settings)
    )
    blockers.extend(f"held: {h.reason}" for h in ledger.status.active_holds())
    return blockers


def unattested_authorship(ledger: Ledger, settings: GateSettings) -> list[str]:
    """Evidence the gate covers whose authorship is not attested at its current digest,
    when the policy requires attested authorship."""
    if not ledger.policy.require_attested_authorship:
        return []
    covered = covered_digests(settings, ledger.spec)
    return [
        e.id
        for e in ledger.spec.evidence
        if e.id in covered
        and (
            (attested := ledger.status.authorship.get(e.id)) is None or attested.sha256 != e.sha256
        )
    ]


def await_gate(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    gate = ledger.status.gates[stage_id]
    quorum = progress(ledger, stage_id, settings)
    open_requests = gate.open_change_requests()
    holds = ledger.status.active_holds()
    if holds:
        # Decisions are refused while held, so the reviewers are not who it waits for: an
        # operator's inbox and `AwaitingRoles="operator"` must find it, a reviewer's must not.
        ledger.await_(
            f"the release to resume at {stage_id} ({'; '.join(h.reason for h in holds)})",
            now,
            roles=["operator"],
            until=min((h.until for h in holds if h.until), default=None),
        )
        return
    if open_requests or ledger.evidence_failures():
        ledger.await_(
            "an amend from the submitter (changes requested)",
            now,
            roles=[],
            people=[ledger.spec.submitter],
            until=gate.deadline_at,
        )
        return
    awaited = awaited_at_gate(ledger.policy, ledger.status, settings, gate)
    stuck = "; no one left may approve" if awaited.stuck else ""
    ledger.await_(
        f"approval at {stage_id}: {quorum.describe()}{stuck}",
        now,
        roles=awaited.roles,
        people=awaited.people,
        until=gate.deadline_at,
    )


def refresh_gate(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    """Expire stale approvals and recompute what the gate awaits."""
    gate = ledger.status.gates[stage_id]
    if settings.approval_ttl is not None:
        for decision in gate.decisions:
            if APPROVAL_EXPIRY.expired(decision, settings, now):
                decision.valid = False
                decision.invalidated_reason = APPROVAL_EXPIRY.reason(settings)
                event = ledger.audit(
                    now,
                    SYSTEM,
                    "approval_expired",
                    {"person": decision.person, "role": decision.role},
                    stage=stage_id,
                )
                ledger.notify(
                    NotificationEvent.APPROVALS_INVALIDATED,
                    event,
                    f"Your approval at {stage_id} expired",
                    f"{decision.person}'s approval of {ledger.title} at {stage_id} "
                    f"({when(decision.at)}) expired before the gate closed.",
                    action_needed="Review again and approve if it still holds.",
                    concerned=[decision.person],
                )
    if gate.closed_at is None and not ledger.is_terminal():
        await_gate(ledger, stage_id, settings, now)


def next_expiry(ledger: Ledger, stage_id: str, settings: GateSettings) -> datetime | None:
    return APPROVAL_EXPIRY.next_expiry(ledger.status.gates[stage_id], settings)


def close_gate(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    del settings
    gate = ledger.status.gates[stage_id]
    gate.closed_at = now
    approvers = [d.on_behalf_of or d.person for d in gate.valid_approvals()]
    event = ledger.audit(now, SYSTEM, "gate_passed", {"approvers": approvers}, stage=stage_id)
    ledger.notify(
        NotificationEvent.GATE_PASSED,
        event,
        f"{stage_id} passed",
        f"{ledger.title} passed {stage_id} with the approval of "
        f"{', '.join(approvers) or 'nobody (no quorum)'}.",
        concerned=[ledger.spec.submitter, *approvers],
    )


def remind(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    gate = ledger.status.gates[stage_id]
    gate.reminders_sent += 1
    quorum = progress(ledger, stage_id, settings)
    event = ledger.audit(
        now,
        SYSTEM,
        "reminder_sent",
        {"count": gate.reminders_sent, "awaiting": quorum.awaited_roles},
        stage=stage_id,
    )
    ledger.notify(
        NotificationEvent.REMINDER,
        event,
        f"Reminder: {stage_id} still needs you",
        f"{ledger.title} has waited at {stage_id} since {when(gate.opened_at)}; it still needs "
        f"{quorum.describe()}.",
        action_needed="Review and decide.",
        due=gate.deadline_at,
        roles=quorum.awaited_roles,
        stage=stage_id,
    )


def escalate(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    gate = ledger.status.gates[stage_id]
    gate.escalated_at = now
    quorum = progress(ledger, stage_id, settings)
    event = ledger.audit(now, SYSTEM, "escalated", {"to": settings.escalate_to}, stage=stage_id)
    ledger.notify(
        NotificationEvent.ESCALATION,
        event,
        f"Escalation: {stage_id} has waited since {when(gate.opened_at)}",
        f"{ledger.title} is stuck at {stage_id}; it still needs {quorum.describe()}.",
        action_needed="Find the missing reviewers or decide how to proceed.",
        due=gate.deadline_at,
        roles=list(settings.escalate_to),
        stage=stage_id,
    )


def deadline_passed(ledger: Ledger, stage_id: str, settings: GateSettings, now: datetime) -> None:
    """The gate's deadline passed: fail closed (reject) or hold for an operator."""
    gate = ledger.status.gates[stage_id]
    reason = f"{stage_id} missed its deadline {when(gate.deadline_at)}"
    gate.deadline_at = None
    event = ledger.audit(
        now, SYSTEM, "deadline_missed", {"action": settings.on_deadline}, stage=stage_id
    )
    ledger.notify(
        NotificationEvent.DEADLINE_MISSED,
        event,
        f"{stage_id} missed its deadline",
        f"{ledger.title}: {reason}. Policy action: {settings.on_deadline}.",
        action_needed=(
            "Nothing: the release was rejected (fail closed)."
            if settings.on_deadline == "reject"
            else "Operators: chase the missing reviewers, then `gatekeeper ops resume` "
            "(the deadline restarts) or `gatekeeper ops withdraw`."
        ),
        roles=["operator", *settings.escalate_to],
        concerned=[ledger.spec.submitter],
    )
    if settings.on_deadline == "reject":
        ledger.end(ReleaseState.REJECTED, now, reason, SYSTEM)
        ledger.notify_end(ReleaseState.REJECTED, now, reason)
    else:
        ledger.status.holds.append(HoldRecord(kind="deadline", by=SYSTEM, reason=reason, at=now))
        ledger.refresh_state()


# --- policy checks ---------------------------------------------------------------------------


def check(ctx: CheckContext, index: int, stage: ApprovalGateStage) -> bool:
    path: FieldPath = ("stages", index)
    if not stage.quorum:
        message = "an approval gate needs a quorum: at least one requirement, e.g. '- role: safety'"
        ctx.add((*path, "quorum"), message)
    return check_gate(ctx, stage, path) and bool(stage.quorum)


def check_gate(
    ctx: CheckContext, stage: ApprovalGateStage | AccessGrantStage, path: FieldPath
) -> bool:
    """Check a stage's quorum and clocks; return whether its quorum is workable."""
    people = ctx.people
    held = ctx.held_roles
    workable = True
    for index, requirement in enumerate(stage.quorum):
        req_path = (*path, "quorum", index)
        for role_index, role in enumerate(requirement.roles):
            if role == _RELEASE_MANAGER:
                message = "release_manager can never approve: a submitter may not approve a release"
                ctx.add((*req_path, "roles", role_index), message)
                workable = False
            elif role not in held:
                message = f"no one on the roster holds role '{role}'{did_you_mean(role, held)}"
                ctx.add((*req_path, "roles", role_index), message)
                workable = False
        eligible = [
            p for p, roles in people.items() if not set(roles).isdisjoint(requirement.roles)
        ]
        if eligible and requirement.count > len(eligible):
            message = (
                f"needs {requirement.count} people holding {' or '.join(requirement.roles)}, but "
                f"the roster has only {len(eligible)} ({', '.join(eligible)})"
            )
            ctx.add((*req_path, "count"), message)
            workable = False
    if workable and stage.quorum:
        problem = feasibility.gate_problem(Scope(ctx.policy), stage)
        if problem is not None:
            ctx.add((*path, "quorum"), problem)
            workable = False
    check_gate_clocks(ctx, stage, path, held)
    return workable


def check_gate_clocks(
    ctx: CheckContext, stage: GateSettings, path: FieldPath, held: set[str]
) -> None:
    for name in _GATE_CLOCKS:
        value: timedelta | None = getattr(stage, name)
        if value is not None and value <= timedelta(0):
            ctx.add((*path, name), f"must be longer than zero (got {show(value)})")
    reminder = stage.reminder_every
    if reminder is not None and timedelta(0) < reminder < MIN_REMINDER_INTERVAL:
        # Each reminder is a timer and a notification in the release's history; a gate that
        # waits weeks must not remind every few seconds (and nobody wants that mail).
        ctx.add(
            (*path, "reminder_every"),
            f"must be at least {show(MIN_REMINDER_INTERVAL)} (got {show(reminder)})",
        )
    if stage.escalate_after is None:
        return
    if not stage.escalate_to:
        ctx.add((*path, "escalate_to"), "names no role to escalate to")
    for index, role in enumerate(stage.escalate_to):
        if role not in held:
            message = f"no one on the roster holds role '{role}'{did_you_mean(role, held)}"
            ctx.add((*path, "escalate_to", index), message)
    deadline = stage.deadline
    if deadline is not None and timedelta(0) < deadline <= stage.escalate_after:
        message = (
            f"must be shorter than the deadline ({show(deadline)}), or the gate never "
            f"escalates (got {show(stage.escalate_after)})"
        )
        ctx.add((*path, "escalate_after"), message)


# --- description -----------------------------------------------------------------------------


def leaves_when(stage: ApprovalGateStage) -> str:
    return gate_sentence(stage, "approve") + "; any reject ends the release"


def gate_sentence(stage: GateSettings, verb: str) -> str:
    wanted = " and ".join(req.describe() for req in stage.quorum)
    text = f"{wanted} {verb}"
    if stage.deadline is not None:
        text += f" (deadline {format_duration(stage.deadline)}: {stage.on_deadline})"
    return text


SPEC = StageKindSpec(
    kind=StageKind.APPROVAL_GATE,
    model=ApprovalGateStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)

"""Reminders, escalation, deadlines, approval expiry and timed holds are durable timers.

Each test moves one release's clock with ``harness.skip(days)`` (per-workflow time skipping on the
real dev server) and then checks what people were told (the outbox) and what the audit recorded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from gatekeeper.models import (
    ApprovalGateStage,
    OperatorRequest,
    Policy,
    ReleaseState,
)
from gatekeeper.release_list import ListFilter
from tests import factories
from tests.helpers import eventually
from tests.workflows.conftest import Harness
from workflows.registry import ALL_WORKFLOWS

GATE = "internal_review"
LEGAL = {"lee.legal", "lou.legal", "rm.reviewer"}
EXECUTIVES = {"eve.exec", "ed.exec"}


def gate_policy(**clocks: Any) -> Policy:
    """The test policy with clocks on its internal review gate."""
    stages = list(factories.policy().stages)
    stages[0] = ApprovalGateStage(id=GATE, quorum=factories.REVIEW_QUORUM, **clocks)
    return factories.policy(stages=stages)


async def start_at_gate(harness: Harness, policy: Policy) -> str:
    status = await harness.start(policy=policy)
    await harness.at_stage(status.release_id, GATE)
    return status.release_id


def notified(harness: Harness, rid: str, event: str) -> list[set[str]]:
    """Recipients of each ``event`` notification about ``rid``, one set per notification."""
    by_key: dict[str, set[str]] = {}
    for line in harness.outbox_lines():
        note = line["notification"]
        if note["release_id"] == rid and note["event"] == event:
            by_key.setdefault(note["idempotency_key"], set()).add(line["recipient"]["id"])
    return list(by_key.values())


async def until_notified(
    harness: Harness, rid: str, event: str, count: int, *, within: float = 10.0
) -> list[set[str]]:
    """Wait until ``count`` notifications of ``event`` reached the outbox (activities are async)."""
    return await eventually(
        lambda: notified(harness, rid, event),
        lambda found: len(found) >= count,
        what=f"{count} {event} notification(s) of {rid} in the outbox",
        within=within,
    )


async def actions(harness: Harness, rid: str) -> list[str]:
    return [event.action for event in await harness.releases.audit(rid)]


class TestReminders:
    """A gate that waits longer than the reminder interval reminds the roles it still awaits."""

    async def test_first_reminder_comes_once_the_interval_has_passed(
        self, harness: Harness
    ) -> None:
        rid = await start_at_gate(harness, gate_policy(reminder_every=timedelta(days=2)))
        await harness.skip(rid, 2.5)
        await until_notified(harness, rid, "reminder", 1)
        opened = (await harness.releases.status(rid)).gates[GATE].opened_at
        sent = [
            e.at - opened for e in await harness.releases.audit(rid) if e.action == "reminder_sent"
        ]
        assert len(sent) == 1 and timedelta(days=2) <= sent[0] < timedelta(days=2.5)

    async def test_reminders_repeat_and_reach_only_the_awaited_roles(
        self, harness: Harness
    ) -> None:
        rid = await start_at_gate(harness, gate_policy(reminder_every=timedelta(days=2)))
        await harness.approve(rid, "sam.safety", "safety")
        await harness.approve(rid, "sec.one", "security")

        await harness.skip(rid, 2.5)
        first = await until_notified(harness, rid, "reminder", 1)
        assert first == [LEGAL], "only legal is still awaited"

        await harness.skip(rid, 2)
        await until_notified(harness, rid, "reminder", 2)
        gate = (await harness.releases.status(rid)).gates[GATE]
        assert gate.reminders_sent == 2
        assert (await actions(harness, rid)).count("reminder_sent") == 2

    async def test_held_gate_sends_no_reminder(self, harness: Harness) -> None:
        rid = await start_at_gate(harness, gate_policy(reminder_every=timedelta(days=2)))
        await harness.releases.operate(
            rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="legal review of terms")
        )
        await harness.skip(rid, 2.5)
        await harness.releases.operate(
            rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="terms agreed")
        )
        await harness.skip(rid, 2)
        await until_notified(harness, rid, "reminder", 1)
        events = await harness.releases.audit(rid)
        resumed = next(e.at for e in events if e.action == "resumed")
        reminders = [e.at for e in events if e.action == "reminder_sent"]
        assert len(reminders) == 1 and reminders[0] > resumed, "none while held"


class TestEscalation:
    """Past the escalation age the gate tells the executive role, once."""

    async def test_escalates_once_to_the_executives(self, harness: Harness) -> None:
        rid = await start_at_gate(harness, gate_policy(escalate_after=timedelta(days=5)))
        await harness.skip(rid, 5.5)
        assert await until_notified(harness, rid, "escalation", 1) == [EXECUTIVES]
        status = await harness.releases.status(rid)
        escalated_at = status.gates[GATE].escalated_at
        assert escalated_at is not None
        waited = escalated_at - status.gates[GATE].opened_at
        assert timedelta(days=5) <= waited < timedelta(days=5.5)

        await harness.skip(rid, 10)
        await harness.approve(rid, "sam.safety", "safety")  # a barrier: the skip is processed
        assert (await actions(harness, rid)).count("escalated") == 1
        assert len(notified(harness, rid, "escalation")) == 1


class TestDeadlines:
    """Past the gate's deadline the policy's action is taken, however far away the deadline is."""

    async def test_deadline_beyond_thirty_days_rejects_fail_closed(self, harness: Harness) -> None:
        policy = gate_policy(deadline=timedelta(days=45), on_deadline="reject")
        rid = await start_at_gate(harness, policy)
        await harness.skip(rid, 44)
        status = await harness.releases.status(rid)
        assert status.state is ReleaseState.ACTIVE, "no 30-day cap: the gate still waits"
        assert status.awaiting and status.awaiting.until == status.gates[GATE].deadline_at

        await harness.skip(rid, 2)
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.REJECTED
        assert "missed its deadline" in outcome.status.outcome
        seen = [e.action for e in harness.chain(outcome)]
        assert seen.index("deadline_missed") < seen.index("release_rejected")
        missed = notified(harness, rid, "deadline_missed")
        assert len(missed) == 1 and {factories.OPERATOR, *EXECUTIVES} <= missed[0]
        assert len(notified(harness, rid, "rejected")) == 1

    async def test_deadline_hold_waits_for_an_operator_and_extends_on_resume(
        self, harness: Harness
    ) -> None:
        policy = gate_policy(deadline=timedelta(days=3), on_deadline="hold")
        rid = await start_at_gate(harness, policy)
        await harness.skip(rid, 3.5)
        status = await harness.until(rid, lambda s: s.state is ReleaseState.HELD)
        hold = status.active_holds()[0]
        assert hold.kind == "deadline" and "missed its deadline" in hold.reason
        assert status.awaiting and status.awaiting.roles == ["operator"]
        assert (await until_notified(harness, rid, "deadline_missed", 1))[0] >= {factories.OPERATOR}
        held = [r.release_id for r in await harness.releases.list(ListFilter(state="held"))]
        assert rid in held, 'an operator finds it with ReleaseState="held"'

        result = await harness.releases.operate(
            rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="reviewers are back")
        )
        assert result.state is ReleaseState.ACTIVE
        status = await harness.releases.status(rid)
        assert status.status_version >= result.status_version
        gate = status.gates[GATE]
        assert gate.deadline_at is not None
        assert gate.deadline_at - status.holds[0].released_at == timedelta(days=3)  # type: ignore[operator]

        await harness.skip(rid, 3.5)
        await harness.until(rid, lambda s: s.state is ReleaseState.HELD)
        assert (await actions(harness, rid)).count("deadline_missed") == 2


class TestApprovalExpiry:
    """An approval older than the gate's approval TTL lapses and its reviewer is told."""

    async def test_stale_approval_expires_and_the_role_is_awaited_again(
        self, harness: Harness
    ) -> None:
        rid = await start_at_gate(harness, gate_policy(approval_ttl=timedelta(days=3)))
        await harness.approve(rid, "sam.safety", "safety")
        status = await harness.releases.status(rid)
        assert status.awaiting and "safety" not in status.awaiting.roles

        await harness.skip(rid, 3.5)
        status = await harness.until(
            rid, lambda s: bool(s.awaiting and "safety" in s.awaiting.roles)
        )
        decision = status.gates[GATE].decisions[0]
        assert not decision.valid and decision.invalidated_reason.startswith("expired")
        assert "approval_expired" in await actions(harness, rid)
        assert await until_notified(harness, rid, "approvals_invalidated", 1) == [{"sam.safety"}]


class TestTimedHold:
    """A hold with ``until`` lifts by itself when its time comes."""

    async def test_hold_until_resumes_by_itself(self, harness: Harness) -> None:
        rid = await start_at_gate(harness, gate_policy())
        now = (await harness.releases.status(rid)).updated_at
        result = await harness.releases.operate(
            rid,
            "hold",
            OperatorRequest(
                by=factories.OPERATOR, reason="board meeting", until=now + timedelta(days=2)
            ),
        )
        assert result.state is ReleaseState.HELD
        await harness.skip(rid, 1)
        assert (await harness.releases.status(rid)).state is ReleaseState.HELD

        await harness.skip(rid, 1.5)
        status = await harness.until(rid, lambda s: s.state is ReleaseState.ACTIVE)
        assert status.holds[0].released_by == "gatekeeper"
        events = await harness.releases.audit(rid)
        resumed = [e for e in events if e.action == "resumed"]
        assert len(resumed) == 1 and resumed[0].actor == "gatekeeper"
        assert status.awaiting and set(status.awaiting.roles) == {"safety", "security", "legal"}
        assert len(await until_notified(harness, rid, "resumed", 1)) == 1

        # A history that went through the "held gate awaits the operator" path replays.
        history = await harness.handle(rid).fetch_history()
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None


class TestStory:
    """The release's page reads as a story: named timers and activities, live current details."""

    async def test_timers_and_activities_have_summaries_and_details_show_the_clocks(
        self, harness: Harness
    ) -> None:
        policy = gate_policy(reminder_every=timedelta(days=1), deadline=timedelta(days=5))
        rid = await start_at_gate(harness, policy)
        await harness.skip(rid, 1.5)
        await until_notified(harness, rid, "reminder", 1)

        handle = harness.handle(rid)
        convert = harness.env.client.data_converter.payload_converter
        summaries: dict[str, set[str]] = {}
        for event in (await handle.fetch_history()).events:
            if event.user_metadata.HasField("summary"):
                kind = EventType.Name(event.event_type)
                text = convert.from_payload(event.user_metadata.summary, str)
                summaries.setdefault(kind, set()).add(text)
        assert "Reminder for internal_review" in summaries["EVENT_TYPE_TIMER_STARTED"]
        activities = summaries["EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"]
        assert "Verify evidence digests" in activities
        assert any(s.startswith("Notify") and s.endswith("reminder") for s in activities)
        started = summaries["EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"]
        assert started == {"aurora 2.0.0 · risk high · submitted by rita.manager"}

        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        details = metadata.current_details
        assert "1. **▶ current** — **Internal review** · since " in details
        assert "**Gate internal_review:**" in details and "1 reminder(s) sent" in details
        assert "**Deadline / ends:**" in details

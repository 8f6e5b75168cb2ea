"""A ``waiting_period`` stage: a fixed cooling-off wait that honours holds, on durable timers.

The release's clock is moved with ``harness.skip(days)`` (per-workflow time skipping on the real
dev server). The policy: internal review, a 7-day waiting period, the launch approval, the launch.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from gatekeeper.models import OperatorRequest, Policy, ReleaseState, StageStatus
from gatekeeper.models.policy import WaitingPeriodStage
from tests import factories
from tests.workflows.conftest import Harness
from workflows.registry import ALL_WORKFLOWS

WAIT = "cooling_off"
DAYS = 7


def waiting_policy() -> Policy:
    """Internal review, a 7-day cooling-off wait, the launch approval and the launch."""
    stages = factories.policy().stages
    review, launch_approval, launch = stages[0], stages[-2], stages[-1]
    wait = WaitingPeriodStage(id=WAIT, duration=timedelta(days=DAYS), reason="press embargo")
    return factories.policy(stages=[review, wait, launch_approval, launch])


async def start_waiting(harness: Harness) -> str:
    """A release past its internal review, waiting at the cooling-off stage."""
    spec = factories.spec(f"r-wait-{uuid.uuid4().hex[:8]}", partner_cohorts=[])
    status = await harness.start(spec, waiting_policy())
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.pass_internal_review(rid)
    await harness.at_stage(rid, WAIT)
    return rid


async def timer_summaries(harness: Harness, rid: str) -> list[str]:
    convert = harness.env.client.data_converter.payload_converter
    return [
        convert.from_payload(event.user_metadata.summary, str)
        for event in (await harness.handle(rid).fetch_history()).events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        and event.user_metadata.HasField("summary")
    ]


class TestWaitingPeriod:
    """The release waits the period out, shows when it ends, and then goes on by itself."""

    async def test_it_waits_the_period_and_shows_when_it_ends(self, harness: Harness) -> None:
        rid = await start_waiting(harness)
        status = await harness.releases.status(rid)
        record = status.stage_record(WAIT)
        assert record is not None and record.started_at is not None
        ends = record.started_at + timedelta(days=DAYS)
        assert status.awaiting is not None and status.awaiting.until == ends
        assert "press embargo" in status.awaiting.what
        assert record.note.startswith("waiting until ")
        metadata = await harness.handle(rid).query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        assert "**Deadline / ends:**" in metadata.current_details

        await harness.skip(rid, DAYS - 1)
        assert (await harness.releases.status(rid)).stage == WAIT, "not before its end"

        await harness.skip(rid, 1.5)
        status = await harness.at_stage(rid, "launch_approval")
        record = status.stage_record(WAIT)
        assert record is not None and record.status is StageStatus.DONE
        assert record.ended_at == ends, "it ends when its timer fires, not later"
        assert record.note.startswith(f"waited {DAYS}d")
        assert f"Waiting period of {WAIT}" in await timer_summaries(harness, rid)

        await harness.approve(rid, "eve.exec", "executive")
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.LAUNCHED
        actions = [e.action for e in harness.chain(outcome)]
        assert actions.index("waiting_started") < actions.index("waiting_ended")

    async def test_a_hold_keeps_it_from_ending_until_resumed(self, harness: Harness) -> None:
        rid = await start_waiting(harness)
        await harness.skip(rid, 1)
        await harness.releases.operate(
            rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="legal review of terms")
        )
        await harness.skip(rid, DAYS)  # past the period's end, still held
        status = await harness.until(rid, lambda s: bool(s.awaiting and "ended" in s.awaiting.what))
        assert status.stage == WAIT and status.state is ReleaseState.HELD
        assert status.awaiting is not None and status.awaiting.roles == ["operator"]
        assert "legal review of terms" in status.awaiting.what
        assert "waiting_ended" not in [e.action for e in await harness.releases.audit(rid)]

        await harness.releases.operate(
            rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="terms agreed")
        )
        status = await harness.at_stage(rid, "launch_approval")
        events = await harness.releases.audit(rid)
        resumed = next(e for e in events if e.action == "resumed")
        ended = next(e for e in events if e.action == "waiting_ended")
        assert ended.seq > resumed.seq and ended.at >= resumed.at
        record = status.stage_record(WAIT)
        assert record is not None and record.ended_at == ended.at

        await harness.approve(rid, "eve.exec", "executive")
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.LAUNCHED

        # A history through the wait, the hold and the resume replays with today's code.
        history = await harness.handle(rid).fetch_history()
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None

    async def test_a_timed_hold_lifts_by_itself_and_the_release_goes_on(
        self, harness: Harness
    ) -> None:
        rid = await start_waiting(harness)
        now = (await harness.releases.status(rid)).updated_at
        await harness.releases.operate(
            rid,
            "hold",
            OperatorRequest(
                by=factories.OPERATOR, reason="board meeting", until=now + timedelta(days=DAYS + 2)
            ),
        )
        await harness.skip(rid, DAYS + 1)
        assert (await harness.releases.status(rid)).stage == WAIT, "held past the period"
        await harness.skip(rid, 1.5)
        status = await harness.at_stage(rid, "launch_approval")
        assert status.holds[0].released_by == "gatekeeper"
        assert "Hold ends" in await timer_summaries(harness, rid)

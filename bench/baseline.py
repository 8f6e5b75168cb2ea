"""The benchmark's baseline: a bare Temporal workflow with the same shape as one release.

``make bench`` runs a real release once, reads its history, and turns it into a
:class:`BaselinePlan`: the same number of activities, updates and timers (with the same timer
durations), cut into segments at the same gates. :class:`BaselineWorkflow` then does exactly
that with no-op activities, trivially validated updates and plain timers, so the throughput
ratio between the two is what Gatekeeper itself costs on top of Temporal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from gatekeeper.models.status import STARTED_UPDATE

WORKFLOW_NAME = "BenchBaselineWorkflow"
ACTIVITY_NAME = "bench_noop"
#: The same bound every Gatekeeper activity has, so the server tracks the same timeouts.
NOOP_TIMEOUT = timedelta(seconds=60)


class Segment(BaseModel):
    """What the workflow does before one gate: activities at once, then timers in turn, then
    it waits for the gate's updates (none for the last segment)."""

    activities: int = 0
    timers: list[float] = Field(default_factory=list)
    updates: int = 0


class BaselinePlan(BaseModel):
    segments: list[Segment]

    @property
    def activities(self) -> int:
        return sum(s.activities for s in self.segments)

    @property
    def updates(self) -> int:
        return sum(s.updates for s in self.segments)

    @property
    def timers(self) -> int:
        return sum(len(s.timers) for s in self.segments)

    def with_timers(self, seconds: float) -> BaselinePlan:
        """The same plan with every timer set to ``seconds``."""
        return BaselinePlan(
            segments=[
                s.model_copy(update={"timers": [seconds] * len(s.timers)}) for s in self.segments
            ]
        )

    @property
    def gates(self) -> list[int]:
        """Index of each segment that ends in a gate, in order."""
        return [i for i, s in enumerate(self.segments) if s.updates]


def plan_from_history(events: Iterable[HistoryEvent], gate_sizes: Sequence[int]) -> BaselinePlan:
    """The shape of a finished workflow's history as a plan.

    Args:
        events: the history, in order.
        gate_sizes: how many updates the driver sent at each gate, in order (the release's
            approvals: the history alone does not say which updates belong together).
    """
    segments = [Segment()]
    gates = list(gate_sizes)
    in_gate = 0  # updates of the current gate still expected
    started: dict[int, tuple[int, float]] = {}  # timer event id -> (segment, seconds)
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            segments[-1].activities += 1
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            attributes = event.timer_started_event_attributes
            seconds = attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
            segments[-1].timers.append(seconds)
            started[event.event_id] = (len(segments) - 1, seconds)
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            # A timer the release cancelled early (a state change woke it): the baseline waits
            # only as long as the release did.
            origin = event.timer_canceled_event_attributes.started_event_id
            if origin in started:
                index, seconds = started[origin]
                timers = segments[index].timers
                timers[timers.index(seconds)] = 0.001
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes
            if accepted.accepted_request.input.name == STARTED_UPDATE:
                continue  # the start's own update (Update-with-Start), not a gate's decision
            if in_gate == 0:
                if not gates:
                    raise ValueError("the history has more updates than the gates account for")
                in_gate = gates.pop(0)
                segments[-1].updates = in_gate
            in_gate -= 1
            if in_gate == 0:
                segments.append(Segment())
    if gates or in_gate:
        raise ValueError("the history has fewer updates than the gates account for")
    return BaselinePlan(segments=segments)


@activity.defn(name=ACTIVITY_NAME)
def noop(step: int) -> int:
    """Nothing at all (synchronous, like Gatekeeper's activities: it runs on the thread pool)."""
    return step


@workflow.defn(name=WORKFLOW_NAME)
class BaselineWorkflow:
    """Runs a :class:`BaselinePlan`; ``gate()`` says which gate it waits at (-1: none)."""

    @workflow.init
    def __init__(self, plan: BaselinePlan) -> None:
        del plan
        self._gate = -1
        self._received = 0
        self._wanted = 0

    @workflow.run
    async def run(self, plan: BaselinePlan) -> int:
        for index, segment in enumerate(plan.segments):
            await asyncio.gather(
                *(
                    workflow.execute_activity(
                        noop, step, start_to_close_timeout=NOOP_TIMEOUT, summary="no-op"
                    )
                    for step in range(segment.activities)
                )
            )
            for seconds in segment.timers:
                await workflow.sleep(timedelta(seconds=seconds))
            if segment.updates:
                self._wanted += segment.updates
                self._gate = index
                await workflow.wait_condition(lambda: self._received >= self._wanted)
                self._gate = -1
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._received

    @workflow.update
    def approve(self, who: str) -> int:
        self._received += 1
        return self._received

    @approve.validator
    def _validate_approve(self, who: str) -> None:
        if not who or self._gate < 0:
            raise ValueError("not waiting for an approval")

    @workflow.query
    def gate(self) -> int:
        return self._gate

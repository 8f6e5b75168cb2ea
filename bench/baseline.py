"""The benchmark's baseline: a bare Temporal workflow that carries what a release carries.

``make bench`` runs a real release once, reads its history, and turns it into a
:class:`BaselinePlan`. The baseline workflow then does, with nothing of Gatekeeper in it, what
any implementation of the same release would have to do on Temporal:

- it is started the way the release was (Update-with-Start) with the **same start request**:
  the release's input payload, search attributes and summary/details byte for byte, and the
  same start update with the same argument; it answers that update when it reaches its first
  gate, as the release does;
- it runs the **same workflow tasks' commands**: per task that scheduled work in the release,
  as many (no-op) activities, the same timers (a timer the release cancelled early waits
  1 ms), and the same search-attribute upserts with the same values;
- it waits at the **same gates** for the same updates, which its driver sends with the
  release's own update names and arguments, payload for payload; each update is accepted when
  the baseline waits at a gate (a trivial validator) and returns nothing;
- it answers a one-integer ``gate`` query (the driver polls it as the release's driver polls
  the release's status).

What it leaves out is Gatekeeper's own: activities that do nothing (no outbox, registry, audit
store or signature), no validation of who may decide, update results and a workflow result
that are empty, no patch markers, no status or audit in queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.common import (
    RawValue,
    SearchAttributeKey,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.converter import DataConverter, decode_typed_search_attributes

from bench import plans

WORKFLOW_NAME = "BenchBaselineWorkflow"
#: The same plan with short timers, for the idle round trips.
IDLE_WORKFLOW_NAME = "BenchBaselineIdle"
ACTIVITY_NAME = "bench_noop"
#: The same bound every Gatekeeper activity has, so the server tracks the same timeouts.
NOOP_TIMEOUT = timedelta(seconds=60)
#: The search attribute the SDK upserts itself with each patch marker (``workflow.patched``):
#: not the workflow's own upsert, and not one a workflow may make.
SDK_PATCH_ATTRIBUTE = "TemporalChangeVersion"
#: What a timer the release cancelled early waits in the baseline.
CANCELLED_TIMER_SECONDS = 0.001


@dataclass(frozen=True)
class Call:
    """An update as the release received it: its name and its argument payloads."""

    name: str
    args: tuple[Payload, ...]

    def raw(self) -> list[RawValue]:
        return [RawValue(payload) for payload in self.args]


@dataclass
class Step:
    """The commands one workflow task of the release issued: upserts, activities, timers."""

    activities: int = 0
    timers: list[float] = field(default_factory=list)
    upserts: list[list[SearchAttributeUpdate[Any]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.activities or self.timers or self.upserts)


@dataclass
class Segment:
    """What the workflow does before one gate: its steps in turn, then it waits for the gate's
    updates (none for the last segment)."""

    steps: list[Step] = field(default_factory=list)
    updates: list[Call] = field(default_factory=list)


@dataclass
class BaselinePlan:
    """One release's shape and payloads (see the module's docstring)."""

    segments: list[Segment]
    start_input: tuple[Payload, ...] = ()
    start_search_attributes: TypedSearchAttributes = TypedSearchAttributes.empty
    summary: str | None = None
    details: str | None = None
    started_update: Call | None = None

    @property
    def activities(self) -> int:
        return sum(s.activities for g in self.segments for s in g.steps)

    @property
    def updates(self) -> int:
        return sum(len(g.updates) for g in self.segments)

    @property
    def timers(self) -> int:
        return sum(len(s.timers) for g in self.segments for s in g.steps)

    @property
    def upserts(self) -> int:
        return sum(len(s.upserts) for g in self.segments for s in g.steps)

    @property
    def steps(self) -> int:
        return sum(len(g.steps) for g in self.segments)

    @property
    def gates(self) -> list[int]:
        """Index of each segment that ends in a gate, in order."""
        return [i for i, s in enumerate(self.segments) if s.updates]

    def seconds_before(self, index: int) -> float:
        """The timers segment ``index`` runs before its gate."""
        return sum(t for s in self.segments[index].steps for t in s.timers)

    def with_timers(self, seconds: float) -> BaselinePlan:
        """The same plan with every timer set to ``seconds``."""
        return replace(
            self,
            segments=[
                replace(
                    g,
                    steps=[replace(s, timers=[seconds] * len(s.timers)) for s in g.steps],
                )
                for g in self.segments
            ],
        )

    def shape(self) -> dict[str, Any]:
        return {
            "activities": self.activities,
            "updates": self.updates,
            "timers": self.timers,
            "upserts": self.upserts,
            "workflow_tasks_with_commands": self.steps,
            "start_input_bytes": sum(p.ByteSize() for p in self.start_input),
            "update_argument_bytes": sum(
                p.ByteSize() for g in self.segments for c in g.updates for p in c.args
            ),
        }


def plan_from_history(
    events: Iterable[HistoryEvent],
    gate_sizes: Sequence[int],
    *,
    started_update: str | None = None,
    converter: DataConverter | None = None,
) -> BaselinePlan:
    """The shape and payloads of a finished workflow's history as a plan.

    Args:
        events: the history, in order.
        gate_sizes: how many updates the driver sent at each gate, in order (the release's
            approvals: the history alone does not say which updates belong together).
        started_update: the name of the start's own update (Update-with-Start), not a gate's.
        converter: decodes the summary and details (the default converter's JSON).
    """
    payloads = (converter or DataConverter.default).payload_converter
    plan = BaselinePlan(segments=[Segment(steps=[Step()])])
    gates = list(gate_sizes)
    in_gate = 0  # updates of the current gate still expected
    started: dict[int, tuple[Step, int]] = {}  # timer event id -> (step, index in its timers)

    def step() -> Step:
        return plan.segments[-1].steps[-1]

    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            start = event.workflow_execution_started_event_attributes
            plan.start_input = tuple(start.input.payloads)
            plan.start_search_attributes = decode_typed_search_attributes(start.search_attributes)
            metadata = event.user_metadata
            if metadata.HasField("summary"):
                plan.summary = payloads.from_payload(metadata.summary, str)
            if metadata.HasField("details"):
                plan.details = payloads.from_payload(metadata.details, str)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            if not step().empty:
                plan.segments[-1].steps.append(Step())
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            step().activities += 1
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timer = event.timer_started_event_attributes
            step().timers.append(timer.start_to_fire_timeout.ToTimedelta().total_seconds())
            started[event.event_id] = (step(), len(step().timers) - 1)
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            # A timer the release cancelled early (a state change woke it): the baseline waits
            # only as long as the release did.
            origin = event.timer_canceled_event_attributes.started_event_id
            if origin in started:
                owner, index = started[origin]
                owner.timers[index] = CANCELLED_TIMER_SECONDS
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upserted = event.upsert_workflow_search_attributes_event_attributes
            upsert = upsert_of(upserted.search_attributes)
            if upsert:  # not the SDK's own record of a patch (TemporalChangeVersion)
                step().upserts.append(upsert)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            call = Call(request.input.name, tuple(request.input.args.payloads))
            if call.name == started_update:
                plan.started_update = call
                continue
            if in_gate == 0:
                if not gates:
                    raise ValueError("the history has more updates than the gates account for")
                in_gate = gates.pop(0)
            plan.segments[-1].updates.append(call)
            in_gate -= 1
            if in_gate == 0:
                # What the task that accepted the gate's last update goes on to do belongs to
                # the next segment.
                plan.segments.append(Segment(steps=[Step()]))
    if gates or in_gate:
        raise ValueError("the history has fewer updates than the gates account for")
    for segment in plan.segments:
        segment.steps = [s for s in segment.steps if not s.empty] or [Step()]
    return plan


def upsert_of(attributes: SearchAttributes) -> list[SearchAttributeUpdate[Any]]:
    """One upsert's updates, as the workflow would make them again (a value, or an unset);
    the SDK's own :data:`SDK_PATCH_ATTRIBUTE` left out."""
    updates: list[SearchAttributeUpdate[Any]] = []
    for name, payload in attributes.indexed_fields.items():
        if name == SDK_PATCH_ATTRIBUTE:
            continue
        key = SearchAttributeKey._from_metadata_type(
            name, payload.metadata.get("type", b"Keyword").decode()
        ) or SearchAttributeKey.for_keyword(name)
        if payload.data in (b"", b"null"):
            updates.append(key.value_unset())
            continue
        one = SearchAttributes()
        one.indexed_fields[name].CopyFrom(payload)
        pairs = list(decode_typed_search_attributes(one))
        updates.append(pairs[0].key.value_set(pairs[0].value) if pairs else key.value_unset())
    return updates


def register(name: str, plan: BaselinePlan) -> None:
    """Make ``plan`` what baseline workflows of type ``name`` run (in this process)."""
    plans.PLANS[name] = plan


@activity.defn(name=ACTIVITY_NAME)
def noop(step: int) -> int:
    """Nothing at all (synchronous, like Gatekeeper's activities: it runs on the thread pool)."""
    return step


@workflow.defn(dynamic=True)
class BaselineWorkflow:
    """Runs the plan registered under its workflow type; ``gate()`` says which gate it waits
    at (-1: none). Takes the release's input and updates as raw payloads, unread."""

    def __init__(self) -> None:
        self._gate = -1
        self._received = 0
        self._wanted = 0
        self._first_wait = False

    def _plan(self) -> BaselinePlan:
        plan: BaselinePlan = plans.PLANS[workflow.info().workflow_type]
        return plan

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> None:
        del args
        plan = self._plan()
        for index, segment in enumerate(plan.segments):
            for step in segment.steps:
                for upsert in step.upserts:
                    workflow.upsert_search_attributes(upsert)
                await asyncio.gather(
                    *(
                        workflow.execute_activity(
                            noop, n, start_to_close_timeout=NOOP_TIMEOUT, summary="no-op"
                        )
                        for n in range(step.activities)
                    ),
                    *(workflow.sleep(timedelta(seconds=seconds)) for seconds in step.timers),
                )
            if segment.updates:
                self._wanted += len(segment.updates)
                self._gate = index
                self._first_wait = True
                await workflow.wait_condition(lambda: self._received >= self._wanted)
                self._gate = -1
        self._first_wait = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.update(dynamic=True)
    async def update(self, name: str, args: Sequence[RawValue]) -> None:
        del args
        plan = self._plan()
        if plan.started_update is not None and name == plan.started_update.name:
            # The start's own update: answered at the first wait, as the release answers it.
            await workflow.wait_condition(lambda: self._first_wait)
            return
        self._received += 1

    @update.validator
    def _validate_update(self, name: str, args: Sequence[RawValue]) -> None:
        del args
        started = self._plan().started_update
        if started is not None and name == started.name:
            return
        if self._gate < 0:
            raise ValueError("not waiting for an approval")

    @workflow.query
    def gate(self) -> int:
        return self._gate

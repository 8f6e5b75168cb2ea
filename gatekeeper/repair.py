"""Bringing back a release whose history today's workflow code cannot replay.

A release whose history does not replay (a non-determinism error: the history holds a command
the code would not issue, or lacks one it would) has a workflow task that fails on every attempt:
its status cannot be read, every decision is answered "Workflow Task in failed state", and it
never moves on. Nothing is lost yet — every decision is in the history — but nothing happens.

:func:`repair` finds the last workflow task the worker's code agrees with and resets the workflow
to it, the way ``temporal workflow reset`` does, with every update and signal recorded after
that point re-applied to the new run. So:

1. The history is fetched and replayed with the worker's own workflows and data converter (the
   client's, so an encrypted history decodes as the worker decodes it). A clean replay means
   there is nothing to repair.
2. Prefixes of the history, each ending at a ``WORKFLOW_TASK_COMPLETED`` event, are replayed: a
   prefix ending at task *k*'s completion checks the commands of every task before *k* (task
   *k*'s own commands follow its completion event). The last prefix that replays ends at the
   completion of the first task whose commands the code no longer issues; the search is a
   bisection, since once a prefix fails every longer one fails.
3. The workflow is reset to that completion event: the new run keeps every event before the
   task, runs the task again with today's code, and the server re-applies the updates (the
   decisions) and signals recorded after it, in order. Decisions are re-judged by the
   workflow's validators as when they were first made.

Effects that ran in the discarded part (a notification, a grant) run again; every adapter is
idempotent by key, so nothing is sent or granted twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from gatekeeper.errors import GatekeeperError, ReleaseNotFound
from gatekeeper.ids import release_workflow_id
from gatekeeper.temporal_errors import not_found

#: Events a reset carries over to the new run (``ResetReapplyType.ALL_ELIGIBLE``, none excluded).
_REAPPLIED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "update",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED: "update",
}


class RepairFailed(GatekeeperError):
    """The release could not be reset (the server refused, or no task could be found)."""

    exit_code = 1


@dataclass(frozen=True)
class Repair:
    """What ``gatekeeper ops repair`` found and did."""

    release_id: str
    run_id: str
    events: int
    replays: bool
    dropped_from: int | None = None
    dropped_type: str | None = None
    reset_to_event: int | None = None
    new_run_id: str | None = None
    reapplied: list[str] = field(default_factory=list)
    replay_error: str | None = None

    @property
    def repaired(self) -> bool:
        return self.new_run_id is not None

    def describe(self) -> str:
        if not self.repaired:
            return (
                f"release {self.release_id}: its history ({self.events} events) replays cleanly "
                "with this code; nothing to repair"
            )
        again = ", ".join(self.reapplied) if self.reapplied else "nothing"
        return (
            f"release {self.release_id} repaired: reset run {self.run_id} to workflow task "
            f"completed at event {self.reset_to_event} (this code does not replay events from "
            f"{self.dropped_from} {self.dropped_type} on); new run {self.new_run_id}; "
            f"re-applied {len(self.reapplied)} decision(s)/signal(s): {again}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repaired": self.repaired}


_quiet: Any = None


def _quiet_runtime() -> Any:
    """A Core runtime for replaying that does not log each failing replay to stdout (the
    failure is what :func:`replay_failure` returns); made once per process."""
    global _quiet
    if _quiet is None:
        from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

        _quiet = Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
    return _quiet


async def replay_failure(
    converter: DataConverter, history: WorkflowHistory, *, workflows: Sequence[type]
) -> str | None:
    """Why ``history`` does not replay with ``workflows`` (the worker's, ``ALL_WORKFLOWS`` of
    :mod:`workflows.registry`), or ``None`` if it does."""
    from temporalio.worker import Replayer

    replayer = Replayer(workflows=workflows, data_converter=converter, runtime=_quiet_runtime())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return None if result.replay_failure is None else str(result.replay_failure)


def _prefix(history: WorkflowHistory, end: int) -> WorkflowHistory:
    """The first ``end`` events of ``history``."""
    return WorkflowHistory(history.workflow_id, list(history.events[:end]))


async def last_good_task(
    converter: DataConverter, history: WorkflowHistory, *, workflows: Sequence[type]
) -> int | None:
    """Index into ``history.events`` of the ``WORKFLOW_TASK_COMPLETED`` event to reset to: the
    completion of the first task whose commands the code disagrees with; ``None`` if the
    history has no completed task."""
    completed = [
        i
        for i, event in enumerate(history.events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    if not completed:
        return None
    # Invariant: the prefix through completed[lo] replays (it checks no command of its own
    # task, and none of an earlier task once those replayed); completed[hi] fails, or is past
    # the end.
    lo, hi = 0, len(completed)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        prefix = _prefix(history, completed[mid] + 1)
        if await replay_failure(converter, prefix, workflows=workflows):
            hi = mid
        else:
            lo = mid
    return completed[lo]


def _reapplied(events: list[HistoryEvent]) -> list[str]:
    names = []
    for event in events:
        kind = _REAPPLIED.get(event.event_type)
        if kind is None:
            continue
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            names.append(f"signal {event.workflow_execution_signaled_event_attributes.signal_name}")
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            names.append(f"update {request.input.name}")
        else:
            request = event.workflow_execution_update_admitted_event_attributes.request
            names.append(f"update {request.input.name}")
    return names


async def repair(
    client: Client,
    release_id: str,
    *,
    workflows: Sequence[type],
    reason: str | None = None,
) -> Repair:
    """Reset the release's workflow to the last task today's code replays, re-applying every
    later decision; do nothing if its history replays cleanly."""
    wid = release_workflow_id(release_id)
    handle = client.get_workflow_handle(wid)
    try:
        description = await handle.describe()
        history = await handle.fetch_history()
    except RPCError as err:
        if not_found(err):
            raise ReleaseNotFound(f"no release '{release_id}' (workflow {wid} not found)") from err
        raise RepairFailed(f"release {release_id}: {err.message}") from err
    run_id = description.run_id
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise RepairFailed(
            f"release {release_id} has ended (workflow {status}); only a running release is "
            "repaired, an ended one is never reset"
        )
    events = len(history.events)
    failure = await replay_failure(client.data_converter, history, workflows=workflows)
    if failure is None:
        return Repair(release_id, run_id, events, replays=True)
    index = await last_good_task(client.data_converter, history, workflows=workflows)
    if index is None:
        raise RepairFailed(
            f"release {release_id}: no workflow task ever completed; nothing to reset to"
        )
    reset_to = history.events[index].event_id
    bad = history.events[min(index + 1, events - 1)]
    request = ResetWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=wid, run_id=run_id),
        reason=reason or f"gatekeeper ops repair: history does not replay after event {reset_to}",
        workflow_task_finish_event_id=reset_to,
        request_id=str(uuid.uuid4()),
        # Every update (decision) and signal after the reset point is applied again.
        reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_ALL_ELIGIBLE,
        reset_reapply_exclude_types=[],
    )
    try:
        response = await client.workflow_service.reset_workflow_execution(request)
    except RPCError as err:
        raise RepairFailed(f"release {release_id}: reset refused: {err.message}") from err
    return Repair(
        release_id,
        run_id,
        events,
        replays=False,
        dropped_from=bad.event_id,
        dropped_type=EventType.Name(bad.event_type).removeprefix("EVENT_TYPE_"),
        reset_to_event=reset_to,
        new_run_id=response.run_id,
        reapplied=_reapplied(list(history.events[index + 1 :])),
        replay_error=failure.splitlines()[0][:300] if failure else None,
    )

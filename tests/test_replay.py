"""Today's workflow code replays the histories of releases recorded earlier.

A change that would break releases already running (a different command order, a removed timer)
fails here. Every history the rest of the suite leaves behind is replayed too, when its test ends
(:mod:`tests.replaying`, the autouse fixture in ``tests/conftest.py``). Such changes go behind
``workflow.patched()``; re-recording the histories (``python -m tests.histories.record NAME``,
``--list`` names the scenarios) is only for changes made before any release ran, or to add one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from gatekeeper.failures import CONVERTER
from gatekeeper.repair import last_good_task, replay_failure
from tests.replaying import GATEKEEPER_TYPES
from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


@dataclass(frozen=True)
class Covers:
    """What a saved history is kept for: its workflow type, the updates it accepted (at least
    this many of each) and the timers it started (by summary)."""

    workflow_type: str
    updates: dict[str, int] = field(default_factory=dict)
    timers: frozenset[str] = frozenset()


COVERAGE = {
    "launched": Covers(
        "ModelReleaseWorkflow",
        {"approve": 7, "request_changes": 1, "amend": 1, "record_government_response": 3}
        | {"hold": 1, "resume": 1},
        frozenset({"30-day government testing window"}),
    ),
    # Issue 16's patch (release-costs-what-it-must, standing for every earlier patch): the
    # launched scenario with a task's notices in one activity and one upsert per task.
    "cost_patch": Covers(
        "ModelReleaseWorkflow",
        {"approve": 7, "request_changes": 1, "amend": 1, "record_government_response": 3}
        | {"hold": 1, "resume": 1},
        frozenset({"30-day government testing window"}),
    ),
    "rejected": Covers("ModelReleaseWorkflow", {"reject": 1}),
    "withdrawn": Covers("ModelReleaseWorkflow", {"approve": 3, "withdraw": 1}),
    "access_order": Covers("AccessOrderWorkflow", {"exempt": 1, "lift": 1}),
    "suspended_restored": Covers(
        "ModelReleaseWorkflow", {"suspend_access": 2, "restore_access": 1}
    ),
    "partner_approval": Covers("ModelReleaseWorkflow", {"approve_partners": 3}),
    # Issue 14: a foreign_persons order recorded per person (the release goes on), and an
    # exemption that sweeps only the models it names.
    "per_person_order": Covers("ModelReleaseWorkflow", {"suspend_access": 2, "restore_access": 1}),
    "exemption_sweep": Covers("AccessOrderWorkflow", {"exempt": 1, "lift": 1}),
    # Issue 14 (release-finds-orders, lift-sweeps-late-releases): a release started after an
    # everyone order's sweeps finds the order itself and is held before granting; the lift's
    # sweep restores it, and it grants and launches.
    "late_release": Covers(
        "ModelReleaseWorkflow",
        {"restore_access": 1},
        frozenset({"Minimum partner period of vetted_partner_access"}),
    ),
    "late_order_lift": Covers("AccessOrderWorkflow", {"lift": 1}),
    "delegation": Covers(
        "ModelReleaseWorkflow", {"delegate": 2, "revoke_delegation": 1, "approve": 5}
    ),
    # Recorded by the stages change that added the kind (no scenario in record.py yet).
    "waiting_period": Covers(
        "ModelReleaseWorkflow",
        {"approve": 4, "hold": 1, "resume": 1},
        frozenset({"Waiting period of cooling_off"}),
    ),
    # Issue 14's patches (awaiting-operator-and-since, one-timer-per-deadline,
    # refusals-in-timeline): holds in the window and the partner period, responses that keep the
    # window's timer, a delay that moves it, an early clearance, a refusal shown in the timeline.
    "held_window": Covers(
        "ModelReleaseWorkflow",
        {"approve": 6, "hold": 2, "resume": 2, "record_government_response": 5},
        frozenset({"30-day government testing window"}),
    ),
    "reminders": Covers(
        "ModelReleaseWorkflow",
        {"approve": 1},
        frozenset(
            {
                "Reminder for internal_review",
                "Escalation of internal_review",
                "Deadline of internal_review",
            }
        ),
    ),
}


def history_of(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"history-{path.stem}", path.read_text())


def covered(history: WorkflowHistory) -> Covers:
    """What ``history`` holds, in the terms of :class:`Covers`."""
    started = history.events[0].workflow_execution_started_event_attributes
    updates: Counter[str] = Counter()
    timers: set[str] = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes
            updates[accepted.accepted_request.input.name] += 1
        elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            timers.add(CONVERTER.payload_converter.from_payload(event.user_metadata.summary, str))
    return Covers(started.workflow_type.name, dict(updates), frozenset(timers))


class TestReplay:
    """Every saved history replays without a non-determinism error."""

    def test_histories_exist(self) -> None:
        assert {p.stem for p in HISTORIES} == set(COVERAGE)

    def test_every_workflow_type_is_covered_under_its_class_name(self) -> None:
        """The histories' workflow types (which the replays below find registered) are the
        workflow classes' names: what the after-test replay check selects runs by."""
        assert {c.workflow_type for c in COVERAGE.values()} == GATEKEEPER_TYPES

    @pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
    def test_each_history_covers_what_it_is_kept_for(self, path: Path) -> None:
        """A re-recorded history that lost its point (an update or timer it was kept for, or
        the workflow run to its end) fails here, not silently."""
        history = history_of(path)
        wanted, found = COVERAGE[path.stem], covered(history)
        assert found.workflow_type == wanted.workflow_type
        short = {u: n for u, n in wanted.updates.items() if found.updates.get(u, 0) < n}
        assert not short, f"{path.stem}: too few updates {short} (found {found.updates})"
        assert wanted.timers <= found.timers, found.timers
        assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED

    @pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
    async def test_replays(self, path: Path) -> None:
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=CONVERTER)
        result = await replayer.replay_workflow(history_of(path))
        assert result.replay_failure is None

    async def test_a_changed_workflow_fails_replay(self, tmp_path: Path) -> None:
        """The replay test can fail: a history whose commands were altered does not replay."""
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=CONVERTER)
        result = await replayer.replay_workflow(tampered_rejected(), raise_on_replay_failure=False)
        assert result.replay_failure is not None

    async def test_a_changed_order_workflow_fails_replay(self) -> None:
        """The same holds for the access order's history: its registry activity renamed."""
        text = (Path(__file__).parent / "histories" / "access_order.json").read_text()
        tampered = text.replace('"apply_access_order"', '"apply_access_ord3r"', 1)
        assert tampered != text
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=CONVERTER)
        history = WorkflowHistory.from_json("history-access-order", tampered)
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is not None


def tampered_rejected() -> WorkflowHistory:
    """The saved rejected release with its evidence check's activity renamed in the history."""
    text = (Path(__file__).parent / "histories" / "rejected.json").read_text()
    tampered = text.replace('"verify_evidence"', '"verify_evidenc3"', 1)
    assert tampered != text
    return WorkflowHistory.from_json("release-history-rejected", tampered)


class TestLastGoodTask:
    """``gatekeeper ops repair`` resets to the completion of the first task whose commands the
    code no longer issues: everything before it replays, that task's commands do not."""

    async def test_saved_histories_need_no_repair(self) -> None:
        for path in HISTORIES:
            assert (
                await replay_failure(CONVERTER, history_of(path), workflows=ALL_WORKFLOWS) is None
            ), path.stem

    async def test_the_task_that_scheduled_the_altered_command(self) -> None:
        history = tampered_rejected()
        assert await replay_failure(CONVERTER, history, workflows=ALL_WORKFLOWS) is not None
        index = await last_good_task(CONVERTER, history, workflows=ALL_WORKFLOWS)
        assert index is not None
        events = history.events
        assert events[index].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        # The altered command is among the commands of the task completed at ``index``.
        following = events[index + 1 :]
        next_completed = next(
            i
            for i, e in enumerate(following)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        altered = [
            e
            for e in following[:next_completed]
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "verify_evidenc3"
        ]
        assert altered, "the reset point is not the task that scheduled the altered activity"
        # What a reset keeps replays; one task more does not.
        kept = WorkflowHistory(history.workflow_id, list(events[: index + 1]))
        assert await replay_failure(CONVERTER, kept, workflows=ALL_WORKFLOWS) is None
        one_more = WorkflowHistory(
            history.workflow_id, list(events[: index + 1 + next_completed + 1])
        )
        assert await replay_failure(CONVERTER, one_more, workflows=ALL_WORKFLOWS) is not None

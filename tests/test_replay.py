"""Today's workflow code replays the histories of releases recorded earlier.

A change that would break releases already running (a different command order, a removed timer)
fails here. Every history the rest of the suite leaves behind is replayed too, when its test ends
(:mod:`tests.replaying`, the autouse fixture in ``tests/conftest.py``). Such changes go behind
``workflow.patched()``; re-recording the histories (``python -m tests.histories.record``) is only
for changes made before any release ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from gatekeeper.failures import CONVERTER
from gatekeeper.repair import last_good_task, replay_failure
from workflows.registry import ALL_WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


class TestReplay:
    """Every saved history replays without a non-determinism error."""

    def test_histories_exist(self) -> None:
        assert {p.stem for p in HISTORIES} >= {"launched", "rejected", "withdrawn"}

    @pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
    async def test_replays(self, path: Path) -> None:
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
        history = WorkflowHistory.from_json(f"release-{path.stem}", path.read_text())
        result = await replayer.replay_workflow(history)
        assert result.replay_failure is None

    async def test_a_changed_workflow_fails_replay(self, tmp_path: Path) -> None:
        """The replay test can fail: a history whose commands were altered does not replay."""
        text = (Path(__file__).parent / "histories" / "rejected.json").read_text()
        tampered = text.replace('"verify_evidence"', '"verify_evidenc3"', 1)
        assert tampered != text
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
        history = WorkflowHistory.from_json("release-history-rejected", tampered)
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
            history = WorkflowHistory.from_json(f"release-{path.stem}", path.read_text())
            assert await replay_failure(CONVERTER, history, workflows=ALL_WORKFLOWS) is None, (
                path.stem
            )

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

"""Today's workflow code replays the histories of releases recorded earlier.

A change that would break releases already running (a different command order, a removed timer)
fails here. Such changes go behind ``workflow.patched()``; re-recording the histories
(``python -m tests.histories.record``) is only for changes made before any release ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

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

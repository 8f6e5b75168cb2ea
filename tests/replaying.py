"""Every history a test leaves behind replays with today's workflow code.

The autouse fixture in ``tests/conftest.py`` calls :func:`check_task_queue` when a test that used
the dev server (``env``) and a fresh ``task_queue`` ends: every workflow run on that queue
(releases and access orders, finished or still running, whoever ran them: the in-process
harness, worker processes that were killed and restarted, CLI children) is fetched and replayed
with :class:`temporalio.worker.Replayer` and the project's data converter. A non-determinism
error, or any other replay failure, fails the test at teardown with the run and the first line
of the error.

Histories whose payloads are encrypted with the codec (``binary/encrypted``) are replayed only
when their test named a converter that can read them (:func:`use_converter`); others are
counted as skipped. A test that breaks a history on purpose names the broken run with
:func:`exempt`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from gatekeeper.codec import ENCODING
from gatekeeper.failures import CONVERTER
from workflows.registry import ALL_WORKFLOWS

_EXEMPT: set[str] = set()
_CONVERTERS: dict[str, DataConverter] = {}


def exempt(run_id: str) -> None:
    """Leave run ``run_id`` out of the check: its test made it non-deterministic on purpose."""
    _EXEMPT.add(run_id)


def use_converter(task_queue: str, converter: DataConverter) -> None:
    """Replay the histories on ``task_queue`` with ``converter`` (e.g. one with the codec)."""
    _CONVERTERS[task_queue] = converter


@dataclass
class Tally:
    """What the check did over a session (reported in the terminal summary)."""

    tests: int = 0
    histories: int = 0
    events: int = 0
    skipped_encrypted: int = 0
    seconds: float = 0.0


TALLY = Tally()


@dataclass
class Checked:
    """One task queue's histories: how many replayed, and each failure as ``run: error``."""

    replayed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def encrypted(history: WorkflowHistory) -> bool:
    start = history.events[0].workflow_execution_started_event_attributes
    return any(p.metadata.get("encoding") == ENCODING for p in start.input.payloads)


async def histories_on(client: Client, task_queue: str) -> list[tuple[str, WorkflowHistory]]:
    """(run id, history) of every workflow run started on ``task_queue``."""
    found = []
    async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        found.append((execution.run_id, await handle.fetch_history()))
    return found


async def replay(history: WorkflowHistory, converter: DataConverter = CONVERTER) -> str | None:
    """The replay failure of ``history`` with today's workflows, or ``None``."""
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is None:
        return None
    return str(result.replay_failure).splitlines()[0]


async def check_task_queue(client: Client, task_queue: str) -> Checked:
    """Replay every history on ``task_queue`` (see the module docstring)."""
    began = time.perf_counter()
    checked = Checked()
    converter = _CONVERTERS.get(task_queue)
    for run_id, history in await histories_on(client, task_queue):
        if run_id in _EXEMPT:
            continue
        if converter is None and encrypted(history):
            checked.skipped += 1
            continue
        failure = await replay(history, converter or CONVERTER)
        checked.replayed += 1
        TALLY.events += len(history.events)
        if failure is not None:
            checked.failures.append(f"{history.workflow_id} run {run_id}: {failure}")
    TALLY.tests += 1
    TALLY.histories += checked.replayed
    TALLY.skipped_encrypted += checked.skipped
    TALLY.seconds += time.perf_counter() - began
    return checked

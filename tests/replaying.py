"""Every history a test leaves behind replays with today's workflow code.

The autouse fixture in ``tests/conftest.py`` calls :func:`check_task_queue` when a test that used
the dev server (``env``) and a fresh ``task_queue`` ends: every workflow run on that queue
(releases and access orders, finished or still running, whoever ran them: the in-process
harness, worker processes that were killed and restarted, CLI children; at most
:data:`AT_MOST` per test, sampled across workflow types) is fetched and replayed with
:class:`temporalio.worker.Replayer` and the project's data converter. A non-determinism
error, or any other replay failure, fails the test at teardown with the run and the first line
of the error.

Histories whose payloads are encrypted with the codec (``binary/encrypted``) are replayed only
when their test named a converter that can read them (:func:`use_converter`); others are
counted as skipped. A test that breaks a history on purpose names the broken run with
:func:`exempt`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, WorkflowReplayResult

from gatekeeper.client import data_converter
from gatekeeper.codec import ENCODING
from gatekeeper.settings import Settings
from workflows.registry import ALL_WORKFLOWS

#: The workflow types whose histories are checked: the worker's. Each is registered under its
#: class name (``@workflow.defn(name=...)`` spells it out; ``tests/test_replay.py`` checks the
#: saved histories' types against these names).
GATEKEEPER_TYPES = {w.__name__ for w in ALL_WORKFLOWS}

_EXEMPT: set[str] = set()
_CONVERTERS: dict[str, DataConverter] = {}
#: The converter of a process with default settings: it reads compressed payloads too
#: (:mod:`gatekeeper.compression`), whatever setting wrote them.
CONVERTER = data_converter(Settings())


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
    sampled_out: int = 0
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


#: At most this many runs per test are replayed: a test that starts hundreds of releases along
#: one path (the scale tests) has them sampled, evenly, every workflow type included.
AT_MOST = 24


def sample(runs: list[tuple[str, str, str]], at_most: int = AT_MOST) -> list[tuple[str, str, str]]:
    """``at_most`` of ``runs`` ((type, workflow id, run id)), spread over each workflow type."""
    if len(runs) <= at_most:
        return runs
    by_type: dict[str, list[tuple[str, str, str]]] = {}
    for run in runs:
        by_type.setdefault(run[0], []).append(run)
    share = max(1, at_most // len(by_type))
    chosen = []
    for group in by_type.values():
        step = max(1, len(group) // share)
        chosen.extend(group[::step][:share])
    return chosen


async def histories_on(
    client: Client, task_queue: str, at_most: int = AT_MOST
) -> list[tuple[str, WorkflowHistory]]:
    """(run id, history) of the workflow runs started on ``task_queue`` (:func:`sample`d),
    fetched concurrently."""
    runs = [
        (e.workflow_type, e.id, e.run_id)
        async for e in client.list_workflows(f"TaskQueue = '{task_queue}'")
        if e.workflow_type in GATEKEEPER_TYPES  # not a test's own (the bench's baseline)
    ]
    TALLY.sampled_out += len(runs) - len(chosen := sample(runs, at_most))
    limit = asyncio.Semaphore(16)

    async def fetch(workflow_id: str, run_id: str) -> tuple[str, WorkflowHistory]:
        async with limit:
            handle = client.get_workflow_handle(workflow_id, run_id=run_id)
            return run_id, await handle.fetch_history()

    return list(await asyncio.gather(*(fetch(w, r) for _, w, r in chosen)))


class SessionReplayer:
    """One replay worker for the whole session, fed the histories of each test in turn.

    Replaying is the same as with a replayer per test (the SDK's default runner: each history
    in a fresh sandbox); what is shared is the replay worker, whose start validates every
    workflow class in the sandbox (about 0.09 s of CPU, which each of several hundred tests
    paid). Used from the session's event loop only (the autouse fixture); :meth:`close` at the
    session's end shuts the worker down.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._histories: asyncio.Queue[WorkflowHistory | None] | None = None
        self._results: asyncio.Queue[WorkflowReplayResult] | None = None
        self._lock: asyncio.Lock | None = None

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._histories, self._results, self._lock = (
            asyncio.Queue(),
            asyncio.Queue(),
            asyncio.Lock(),
        )
        self._task = asyncio.create_task(self._run(self._histories, self._results))

    @staticmethod
    async def _run(
        histories: asyncio.Queue[WorkflowHistory | None],
        results: asyncio.Queue[WorkflowReplayResult],
    ) -> None:
        async def fed() -> AsyncIterator[WorkflowHistory]:
            while (history := await histories.get()) is not None:
                yield history

        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=CONVERTER)
        async with replayer.workflow_replay_iterator(fed()) as replayed:
            async for result in replayed:
                await results.put(result)

    async def replay(self, histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowReplayResult]:
        """Each history's result, in order."""
        if self._task is None or self._task.done() or self._loop is not asyncio.get_running_loop():
            self._start()
        assert self._task is not None and self._lock is not None
        assert self._histories is not None and self._results is not None
        async with self._lock:
            for history in histories:
                await self._histories.put(history)
                got = asyncio.ensure_future(self._results.get())
                await asyncio.wait([got, self._task], return_when=asyncio.FIRST_COMPLETED)
                if not got.done():  # the replay worker itself failed: say how
                    got.cancel()
                    await self._task
                    raise RuntimeError("the session's replay worker stopped")
                yield got.result()

    async def close(self) -> None:
        if self._task is None or self._histories is None:
            return
        if not self._task.done():
            await self._histories.put(None)
        await self._task
        self._task = None


SESSION = SessionReplayer()


async def check_task_queue(client: Client, task_queue: str, *, session: bool = False) -> Checked:
    """Replay every history on ``task_queue`` (see the module docstring), all in one replayer:
    with ``session`` (the autouse fixture, on the session's event loop) the session's
    (:data:`SESSION`) unless the queue's histories need a converter of their own."""
    began = time.perf_counter()
    checked = Checked()
    converter = _CONVERTERS.get(task_queue)
    runs: dict[int, str] = {}
    todo: list[WorkflowHistory] = []
    for run_id, history in await histories_on(client, task_queue):
        if run_id in _EXEMPT:
            continue
        if converter is None and encrypted(history):
            checked.skipped += 1
            continue
        runs[id(history)] = run_id
        todo.append(history)
        TALLY.events += len(history.events)
    if todo and session and converter is None:
        async for result in SESSION.replay(todo):
            _record(checked, runs, result)
    elif todo:
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=converter or CONVERTER)
        async with replayer.workflow_replay_iterator(_each(todo)) as results:
            async for result in results:
                _record(checked, runs, result)
    TALLY.tests += 1
    TALLY.histories += checked.replayed
    TALLY.skipped_encrypted += checked.skipped
    TALLY.seconds += time.perf_counter() - began
    return checked


def _record(checked: Checked, runs: dict[int, str], result: WorkflowReplayResult) -> None:
    checked.replayed += 1
    if result.replay_failure is not None:
        first = str(result.replay_failure).splitlines()[0]
        run_id = runs[id(result.history)]
        checked.failures.append(f"{result.history.workflow_id} run {run_id}: {first}")


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history

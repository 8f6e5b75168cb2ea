"""Where the worker's CPU goes while releases run: ``python -m bench --profile FILE`` samples
the bench's own process (its in-process worker, and the drivers) with ``py-spy`` while the 200
releases run, and reports the hotspots.

Sampled with ``--gil``: only the thread holding the GIL counts, so idle activity threads and an
event loop waiting in ``select`` do not. The worker's Rust core (polling, history, gRPC) does
not hold the GIL and is not in the profile; nor is the Temporal server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import re
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from gatekeeper.errors import GatekeeperError

#: Samples per second.
RATE = 100

#: What a sample is spent on: the first rule whose frame is on its stack.
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "activities (thread pool, and their dispatch)",
        ("_execute_sync_activity", "_ActivityWorker._handle_start_activity_task"),
    ),
    (
        "workflow tasks (activations in the sandbox, payload conversion)",
        (
            "_RunningWorkflow.activate",
            "_WorkflowWorker._handle_activation",
            "_WorkflowWorker._create_workflow_instance",
            "_CommandAwareDataConverter",
        ),
    ),
    (
        "drivers and client (bench, gatekeeper.releases)",
        ("(bench/release.py", "(bench/pipeline.py", "(gatekeeper/releases.py"),
    ),
)
#: Frames never reported as hotspots (plumbing every sample passes through).
PLUMBING = ("asyncio/", "<frozen", "runpy", "bench/__main__", "bench/run.py", "threading.py")
#: Files whose functions are reported as hotspots: the project's own code and the SDK's.
REPORTED = re.compile(
    r"\((workflows|activities|gatekeeper|workers|bench)/|temporalio/|pydantic|sqlalchemy"
)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise GatekeeperError("--profile needs py-spy (pip install py-spy)")
    return found


async def profiling(out: Path) -> None:
    """Sample this process into ``out`` until cancelled."""
    process = await asyncio.create_subprocess_exec(
        py_spy(),
        "record",
        "--pid",
        str(os.getpid()),
        "--gil",
        "--nonblocking",
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--output",
        str(out),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await process.wait()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), 30)
            if process.returncode is None:
                process.kill()


def hotspots(path: Path, *, top: int = 30) -> dict[str, Any]:
    """The profile's buckets and its top functions, inclusive, as shares of all samples."""
    if not path.exists():
        return {"samples": 0, "buckets": {}, "functions": []}
    inclusive: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")[1:]]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        for name, marks in BUCKETS:
            if any(mark in frame for frame in frames for mark in marks):
                buckets[name] += n
                break
        else:
            buckets["other"] += n
    if not total:
        return {"samples": 0, "buckets": {}, "functions": []}
    functions = [
        {"function": frame, "percent": round(100 * n / total, 1)}
        for frame, n in inclusive.most_common()
        if REPORTED.search(frame) and not any(p in frame for p in PLUMBING)
    ][:top]
    return {
        "samples": total,
        "buckets": {name: round(100 * n / total, 1) for name, n in buckets.most_common()},
        "functions": functions,
    }

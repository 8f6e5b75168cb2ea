"""Memory: a ``gatekeeper worker`` process alone, with M releases parked in their government
window, its resident memory read from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.figures import process_memory_mb
from bench.pipeline import bench_identity
from bench.release import bench_policy, install_policies, park_release, poll_until
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from workers.devserver import DevServer

PARKED_WINDOW = timedelta(days=30)
#: Parked releases in review at once (the rest queue behind them).
PARK_CONCURRENCY = 50


async def bench_parked(
    server: DevServer, scratch: Path, count: int, *, worker_env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ``gatekeeper worker`` process alone, with ``count`` releases in their 30-day window;
    ``worker_env`` adds to its environment (e.g. ``GATEKEEPER_MAX_CACHED_WORKFLOWS``)."""
    task_queue = f"bench-parked-{uuid.uuid4().hex[:6]}"
    # Nobody is notified: parking a thousand releases costs a third of the time, and what a
    # parked release holds in memory does not depend on notices already sent.
    policy = bench_policy(PARKED_WINDOW, timedelta(days=14), notify=False)
    # The worker process's key registered, and the reviewers' keys, before it starts.
    signer = await asyncio.to_thread(
        bench_identity,
        Settings(task_queue=task_queue, data_dir=scratch, keys_dir=scratch / "keys"),
        [p.id for p in policy.roster],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "GATEKEEPER_"))}
    env.update(
        TEMPORAL_ADDRESS=server.target,
        GATEKEEPER_TASK_QUEUE=task_queue,
        GATEKEEPER_DATA_DIR=str(scratch),
        GATEKEEPER_LOG_FORMAT="json",
        GATEKEEPER_LOG_LEVEL="WARNING",
    )
    env.update(worker_env or {})
    log = (scratch / "worker.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper",
        "worker",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    try:

        async def polling() -> bool:
            return await _has_pollers(server.client, task_queue)

        await poll_until(polling, within=60)
        idle = process_memory_mb(process.pid)
        releases = Releases(server.client, task_queue, signer=signer)
        registry_url = Settings(data_dir=scratch).effective_registry_url
        await asyncio.to_thread(install_policies, registry_url, policy)
        gate = asyncio.Semaphore(PARK_CONCURRENCY)
        run = uuid.uuid4().hex[:6]

        async def park(n: int) -> None:
            async with gate:
                await park_release(releases, f"parked-{run}-{n}", policy)

        began = time.perf_counter()
        await asyncio.gather(*(park(n) for n in range(count)))

        async def all_parked() -> bool:
            query = f"TaskQueue = '{task_queue}' AND ReleaseStage = 'government_testing_window'"
            return (await server.client.count_workflows(query)).count >= count

        await poll_until(all_parked, within=600)
        seconds = time.perf_counter() - began
        await asyncio.sleep(1.0)  # let the last tasks settle before reading memory
        parked = process_memory_mb(process.pid)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()
    return {
        "parked": count,
        "park_seconds": round(seconds, 2),
        "idle_worker": idle,
        "with_parked": parked,
        "per_release_kb": round((parked["rss_mb"] - idle["rss_mb"]) * 1024 / max(count, 1), 1),
    }


async def _has_pollers(client: Client, task_queue: str) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0

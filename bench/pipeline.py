"""Throughput and latency: N releases through the whole pipeline, then N runs of the bare
baseline workflow of the same shape (:mod:`bench.baseline`), each on an in-process worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities import activities_from, open_adapters
from bench.baseline import WORKFLOW_NAME, BaselinePlan, BaselineWorkflow, noop, plan_from_history
from bench.figures import history_bytes, latency_ms, timed
from bench.release import (
    GATES,
    bench_policy,
    drive_release,
    install_policies,
    poll_until,
    seed_partners,
)
from gatekeeper.errors import GatekeeperError
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signer import Signer
from workers.worker import DEFAULT_ACTIVITY_THREADS, build_worker, key_directory, open_identity

#: Compressed clocks of the throughput run (the parked releases keep the real 30 days).
WINDOW = timedelta(seconds=1)
PARTNER_PERIOD = timedelta(seconds=1)
#: Releases (and baselines) run one at a time, for the idle approval round trip; their clocks
#: are shorter still, since only the approvals are timed.
IDLE_RELEASES = 20
IDLE_CLOCK = timedelta(milliseconds=100)
#: Workflows being started at one time: a burst of hundreds of first workflow tasks (each builds
#: its sandbox) would queue past the 10 s workflow-task timeout on two cores.
STARTS_IN_FLIGHT = 20


def bench_identity(settings: Settings, people: Sequence[str]) -> Signer:
    """What ``gatekeeper dev`` sets up, plus a key per person: a local trust root (in the keys
    dir), the worker's key and every person's key registered in ``settings``' registry, so the
    bench's requests are signed and checked exactly as a deployment's are."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gatekeeper import signing
    from gatekeeper.identity.keyfiles import write_private_key
    from gatekeeper.identity.worker_key import local_trust_root

    registry = open_identity(settings, local=True)
    try:
        admin, _, _ = local_trust_root(settings, registry)
        if admin is None:
            raise GatekeeperError(f"bench: no trust root key in {settings.keys_dir}")
        settings.keys_dir.mkdir(parents=True, exist_ok=True)
        for person in people:
            key = Ed25519PrivateKey.generate()
            registry.register(
                principal=person, public_key=signing.public_key_b64(key), admin_key=admin
            )
            write_private_key(settings.keys_dir / f"{person}.pem", key)
    finally:
        registry.close()
    return Signer(keys_dir=settings.keys_dir)


async def bench_pipeline(client: Client, scratch: Path, count: int) -> dict[str, Any]:
    """N releases, then N baseline workflows of the same shape, each on its own worker."""
    settings = Settings(
        task_queue=f"bench-releases-{uuid.uuid4().hex[:6]}",
        data_dir=scratch,
        keys_dir=scratch / "keys",
    )
    await asyncio.to_thread(seed_partners, settings.effective_registry_url)
    policy = bench_policy(WINDOW, PARTNER_PERIOD)
    signer = await asyncio.to_thread(bench_identity, settings, [p.id for p in policy.roster])
    adapters = await asyncio.to_thread(open_adapters, settings)
    releases = Releases(client, settings.task_queue, signer=signer)
    # The worker's validators check signatures against its registry, as in production.
    identity = contextlib.ExitStack()
    identity.enter_context(key_directory(settings.task_queue, adapters.identity))
    quick = bench_policy(IDLE_CLOCK, IDLE_CLOCK)
    await asyncio.to_thread(install_policies, settings.effective_registry_url, policy, quick)
    try:
        with ThreadPoolExecutor(DEFAULT_ACTIVITY_THREADS) as executor:
            worker = build_worker(
                client, settings, activities=activities_from(adapters), activity_executor=executor
            )
            async with worker:
                warm = f"bench-warm-{uuid.uuid4().hex[:6]}"
                await drive_release(releases, warm, policy, [])
                history = await releases.handle(warm).fetch_history()
                idle: list[float] = []
                for n in range(IDLE_RELEASES):
                    await drive_release(releases, f"bench-idle-{n}-{warm}", quick, idle)
                loaded: list[float] = []
                starting = asyncio.Semaphore(STARTS_IN_FLIGHT)
                release_seconds = await timed(
                    [
                        drive_release(
                            releases, f"bench-{n}-{warm}", policy, loaded, starting=starting
                        )
                        for n in range(count)
                    ]
                )
    finally:
        identity.close()
        adapters.close()

    plan = plan_from_history(history.events, [len(approvers) for _, approvers in GATES])
    baseline_queue = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    updates: list[float] = []
    with ThreadPoolExecutor(DEFAULT_ACTIVITY_THREADS) as executor:
        worker = build_worker(
            client,
            settings,
            task_queue=baseline_queue,
            workflows=[BaselineWorkflow],
            activities=[noop],
            activity_executor=executor,
        )
        async with worker:
            first = await drive_baseline(client, baseline_queue, plan, [])
            baseline_history = await client.get_workflow_handle(first).fetch_history()
            baseline_idle: list[float] = []
            quick_plan = plan.with_timers(IDLE_CLOCK.total_seconds())
            for _ in range(IDLE_RELEASES):
                await drive_baseline(client, baseline_queue, quick_plan, baseline_idle)
            starting = asyncio.Semaphore(STARTS_IN_FLIGHT)
            baseline_seconds = await timed(
                [
                    drive_baseline(client, baseline_queue, plan, updates, starting=starting)
                    for _ in range(count)
                ]
            )

    release_rate = count / release_seconds
    baseline_rate = count / baseline_seconds
    return {
        "releases": count,
        "shape": {
            "activities": plan.activities,
            "updates": plan.updates,
            "timers": plan.timers,
            "history_events": len(history.events),
            "baseline_history_events": len(baseline_history.events),
            "segments": [s.model_dump() for s in plan.segments],
        },
        "release_seconds": round(release_seconds, 2),
        "releases_per_second": round(release_rate, 2),
        "baseline_seconds": round(baseline_seconds, 2),
        "baseline_per_second": round(baseline_rate, 2),
        "ratio": round(baseline_rate / release_rate, 3),
        # What one completed release stores in Temporal, next to the bare baseline's.
        "history_bytes": history_bytes(history.events),
        "baseline_history_bytes": history_bytes(baseline_history.events),
        "approval_idle": latency_ms(idle),
        "approval_loaded": latency_ms(loaded),
        "baseline_update_idle": latency_ms(baseline_idle),
        "baseline_update_loaded": latency_ms(updates),
    }


async def drive_baseline(
    client: Client,
    task_queue: str,
    plan: BaselinePlan,
    latencies: list[float],
    *,
    starting: asyncio.Semaphore | None = None,
) -> str:
    """The baseline's driver: the same sleeping, polling and update pattern as
    :func:`~bench.release.drive_release`. Returns the workflow id."""
    async with starting or contextlib.nullcontext():
        handle = await client.start_workflow(
            WORKFLOW_NAME,
            plan,
            id=f"bench-baseline-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
            result_type=int,
        )
    for index in plan.gates:
        await asyncio.sleep(sum(plan.segments[index].timers))

        async def ready(index: int = index) -> bool:
            gate: int = await handle.query("gate", result_type=int)
            return gate == index

        await poll_until(ready, within=300)
        for _ in range(plan.segments[index].updates):
            began = time.perf_counter()
            await handle.execute_update("approve", "bench", result_type=int)
            latencies.append(time.perf_counter() - began)
    await asyncio.wait_for(handle.result(), 300)
    return handle.id

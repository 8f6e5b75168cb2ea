"""Throughput and latency: N releases through the whole pipeline, then N runs of the bare
baseline workflow that carries what the release carried (:mod:`bench.baseline`), then (with
``postgres``) the same N releases with the worker's registry on PostgreSQL; each on an
in-process worker built by :func:`workers.worker.build_worker`."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowUpdateInput,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import RawValue, WorkflowIDConflictPolicy
from temporalio.service import RPCError

from activities import activities_from, open_adapters
from bench import plans
from bench.baseline import (
    IDLE_WORKFLOW_NAME,
    WORKFLOW_NAME,
    BaselinePlan,
    BaselineWorkflow,
    Call,
    noop,
    plan_from_history,
    register,
)
from bench.figures import history_bytes, latency_ms, timed
from bench.postgres import postgres_database
from bench.release import (
    APPROVAL_ATTEMPTS,
    GATES,
    bench_policy,
    drive_release,
    install_policies,
    poll_until,
    seed_partners,
)
from gatekeeper.client import data_converter
from gatekeeper.errors import GatekeeperError
from gatekeeper.models.status import STARTED_UPDATE
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

#: Where the update RPCs of the current driver are timed (see :class:`UpdateTimer`).
_update_rpcs: ContextVar[list[float] | None] = ContextVar("bench_update_rpcs", default=None)


class UpdateTimer(Interceptor):
    """Times each update RPC alone (sent to result received), into the list the current task
    set with :func:`timing_updates`: a release's approval also asks for the release's status
    (the signature binds what the person saw) and checks it is not stuck; this separates what
    the update itself costs."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _TimingOutbound(next)


class _TimingOutbound(OutboundInterceptor):
    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        began = time.perf_counter()
        handle = await super().start_workflow_update(input)
        sink = _update_rpcs.get()
        if sink is not None:
            sink.append(time.perf_counter() - began)
        return handle


def timing_updates(sink: list[float]) -> None:
    """Time the update RPCs of the current task into ``sink``."""
    _update_rpcs.set(sink)


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


@dataclass
class ReleaseRun:
    """What one pass of releases measured."""

    seconds: float
    history: WorkflowHistory
    idle: list[float] = field(default_factory=list)
    idle_updates: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    loaded_updates: list[float] = field(default_factory=list)


async def run_releases(
    client: Client,
    settings: Settings,
    count: int,
    *,
    idle: int = IDLE_RELEASES,
    sampled: Callable[[], Awaitable[None]] | None = None,
) -> ReleaseRun:
    """One warm-up release (its history is kept), then ``idle`` releases one at a time, then
    ``count`` at once, all on one in-process worker on ``settings``' registry. ``sampled`` is
    awaited while the ``count`` releases run (e.g. a profiler's sampling)."""
    config = client.config()
    config["interceptors"] = [*config["interceptors"], UpdateTimer()]
    client = Client(**config)
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
    run = uuid.uuid4().hex[:6]
    try:
        with ThreadPoolExecutor(DEFAULT_ACTIVITY_THREADS) as executor:
            worker = build_worker(
                client, settings, activities=activities_from(adapters), activity_executor=executor
            )
            async with worker:
                warm = f"bench-warm-{run}"
                await drive_release(releases, warm, policy, [])
                history = await releases.handle(warm).fetch_history()
                result = ReleaseRun(seconds=0.0, history=history)
                if idle:
                    timing_updates(result.idle_updates)
                    for n in range(idle):
                        await drive_release(releases, f"bench-idle-{n}-{run}", quick, result.idle)
                starting = asyncio.Semaphore(STARTS_IN_FLIGHT)

                async def one(n: int) -> None:
                    timing_updates(result.loaded_updates)
                    await drive_release(
                        releases, f"bench-{n}-{run}", policy, result.loaded, starting=starting
                    )

                runs: list[Awaitable[object]] = [one(n) for n in range(count)]
                sampler = asyncio.ensure_future(sampled()) if sampled else None
                try:
                    result.seconds = await timed(runs)
                finally:
                    if sampler is not None:
                        sampler.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await sampler
    finally:
        identity.close()
        adapters.close()
    return result


@dataclass
class BaselineRun:
    seconds: float
    history: WorkflowHistory
    idle: list[float]
    loaded: list[float]


async def run_baselines(
    client: Client, settings: Settings, plan: BaselinePlan, count: int, idle_runs: int
) -> BaselineRun:
    """The baseline's pass, as :func:`run_releases`: one to keep, the idle ones, then ``count``
    at once, on a worker built the same way (threads, cache, sandbox)."""
    register(WORKFLOW_NAME, plan)
    register(IDLE_WORKFLOW_NAME, plan.with_timers(IDLE_CLOCK.total_seconds()))
    task_queue = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    idle: list[float] = []
    loaded: list[float] = []
    with ThreadPoolExecutor(DEFAULT_ACTIVITY_THREADS) as executor:
        worker = build_worker(
            client,
            settings,
            task_queue=task_queue,
            workflows=[BaselineWorkflow],
            activities=[noop],
            activity_executor=executor,
            # The baseline's workflow module is shared like the release's (`workflows`).
            passthrough=("bench.baseline", "bench.plans"),
        )
        async with worker:
            first = await drive_baseline(client, task_queue, WORKFLOW_NAME, plan, [])
            history = await client.get_workflow_handle(first).fetch_history()
            for _ in range(idle_runs):
                await drive_baseline(client, task_queue, IDLE_WORKFLOW_NAME, plan, idle)
            starting = asyncio.Semaphore(STARTS_IN_FLIGHT)
            seconds = await timed(
                [
                    drive_baseline(
                        client, task_queue, WORKFLOW_NAME, plan, loaded, starting=starting
                    )
                    for _ in range(count)
                ]
            )
    return BaselineRun(seconds=seconds, history=history, idle=idle, loaded=loaded)


async def bench_pipeline(
    client: Client,
    scratch: Path,
    count: int,
    *,
    postgres: bool = True,
    idle: int = IDLE_RELEASES,
    say: Callable[[str], None] = print,
    sampled: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """N releases, N baselines, and (``postgres``) N releases on PostgreSQL: the figures.
    ``idle`` releases (and baselines) run one at a time first, for the idle round trips."""
    sqlite_dir = scratch / "sqlite"
    sqlite_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        task_queue=f"bench-releases-{uuid.uuid4().hex[:6]}",
        data_dir=sqlite_dir,
        keys_dir=sqlite_dir / "keys",
    )
    releases = await run_releases(client, settings, count, idle=idle, sampled=sampled)
    plan = plan_from_history(
        releases.history.events, [len(a) for _, a in GATES], started_update=STARTED_UPDATE
    )
    say(f"baseline: {count} bare workflows of the release's shape …")
    baseline = await run_baselines(client, settings, plan, count, idle)

    say("compressed: one release with GATEKEEPER_PAYLOAD_COMPRESSION=zlib …")
    compressed = await compressed_release(client, scratch)

    release_rate = count / releases.seconds
    baseline_rate = count / baseline.seconds
    release_bytes = history_bytes(releases.history.events)
    baseline_bytes = history_bytes(baseline.history.events)
    figures: dict[str, Any] = {
        "releases": count,
        "shape": {
            **plan.shape(),
            "history_events": len(releases.history.events),
            "baseline_history_events": len(baseline.history.events),
        },
        "release_seconds": round(releases.seconds, 2),
        "releases_per_second": round(release_rate, 2),
        "baseline_seconds": round(baseline.seconds, 2),
        "baseline_per_second": round(baseline_rate, 2),
        "ratio": round(baseline_rate / release_rate, 3),
        # What one completed release stores in Temporal, next to the bare baseline's.
        "history_bytes": release_bytes,
        "baseline_history_bytes": baseline_bytes,
        "history_ratio": round(release_bytes / baseline_bytes, 3),
        # The same release with payload compression on (gatekeeper.compression).
        "compressed_history_bytes": history_bytes(compressed.events),
        "compressed_history_ratio": round(history_bytes(compressed.events) / baseline_bytes, 3),
        # An approval as a client makes it (repair check, status query, signed update) …
        "approval_idle": latency_ms(releases.idle),
        "approval_loaded": latency_ms(releases.loaded),
        # … and its update RPC alone.
        "approval_update_idle": latency_ms(releases.idle_updates),
        "approval_update_loaded": latency_ms(releases.loaded_updates),
        "baseline_update_idle": latency_ms(baseline.idle),
        "baseline_update_loaded": latency_ms(baseline.loaded),
        "postgres": None,
    }
    if postgres:
        say(f"postgresql: {count} releases with the worker's registry on PostgreSQL …")
        pg_dir = scratch / "postgresql"
        pg_dir.mkdir(parents=True, exist_ok=True)
        with postgres_database() as url:
            pg_settings = Settings(
                task_queue=f"bench-pg-{uuid.uuid4().hex[:6]}",
                data_dir=pg_dir,
                keys_dir=pg_dir / "keys",
                registry_url=url,
            )
            on_pg = await run_releases(client, pg_settings, count, idle=0)
        pg_rate = count / on_pg.seconds
        figures["postgres"] = {
            "release_seconds": round(on_pg.seconds, 2),
            "releases_per_second": round(pg_rate, 2),
            # SQLite's rate over PostgreSQL's: how much slower the same run is on PostgreSQL.
            "ratio_to_sqlite": round(release_rate / pg_rate, 3),
            "approval_loaded": latency_ms(on_pg.loaded),
            "history_bytes": history_bytes(on_pg.history.events),
        }
    return figures


async def compressed_release(client: Client, scratch: Path) -> WorkflowHistory:
    """The history of one release run by a client and worker with payload compression on."""
    data_dir = scratch / "compressed"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        task_queue=f"bench-zlib-{uuid.uuid4().hex[:6]}",
        data_dir=data_dir,
        keys_dir=data_dir / "keys",
        payload_compression="zlib",
    )
    config = client.config()
    config["data_converter"] = data_converter(settings)

    async def one() -> ReleaseRun:
        # Its own sink, in its own task: the timed passes' update lists stay as they were.
        timing_updates([])
        return await run_releases(Client(**config), settings, 0, idle=0)

    return (await asyncio.create_task(one())).history


async def drive_baseline(
    client: Client,
    task_queue: str,
    workflow_type: str,
    plan: BaselinePlan,
    latencies: list[float],
    *,
    starting: asyncio.Semaphore | None = None,
) -> str:
    """The baseline's driver: the release's start request and updates, and the same sleeping
    and polling pattern as :func:`~bench.release.drive_release`. Returns the workflow id."""
    workflow_id = f"bench-baseline-{uuid.uuid4().hex[:10]}"
    operation: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
        workflow_type,
        args=[*_raw(plan.start_input)],
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=plan.start_search_attributes,
        static_summary=plan.summary,
        static_details=plan.details,
    )
    async with starting or contextlib.nullcontext():
        if plan.started_update is not None:
            # Started, but its answer lost to an overloaded machine: polled below, as a
            # release's driver does.
            with contextlib.suppress(WorkflowUpdateRPCTimeoutOrCancelledError):
                await client.execute_update_with_start_workflow(
                    plan.started_update.name,
                    args=plan.started_update.raw(),
                    start_workflow_operation=operation,
                )
        else:
            await client.start_workflow(
                workflow_type,
                args=[*_raw(plan.start_input)],
                id=workflow_id,
                task_queue=task_queue,
                search_attributes=plan.start_search_attributes,
                static_summary=plan.summary,
                static_details=plan.details,
            )
    handle = client.get_workflow_handle(workflow_id)
    registered: BaselinePlan = _registered(workflow_type, plan)
    for index in registered.gates:
        await asyncio.sleep(registered.seconds_before(index))

        async def ready(index: int = index) -> bool:
            try:
                gate: int = await handle.query("gate", result_type=int)
            except RPCError:  # unanswered on an overloaded machine: not yet
                return False
            return gate == index

        await poll_until(ready, within=300)
        for call in registered.segments[index].updates:
            began = time.perf_counter()
            await bare_update(handle, call)
            latencies.append(time.perf_counter() - began)
    await asyncio.wait_for(handle.result(), 300)
    return handle.id


async def bare_update(handle: WorkflowHandle[Any, Any], call: Call) -> None:
    """One of the release's updates, sent again under the same update id if its answer was lost
    to an overloaded machine (the server answers a repeated id once), as
    :func:`bench.release.approve` asks again."""
    update_id = uuid.uuid4().hex
    for attempt in range(APPROVAL_ATTEMPTS):
        try:
            await handle.execute_update(call.name, args=call.raw(), id=update_id)
            return
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            if attempt + 1 == APPROVAL_ATTEMPTS:
                raise


def _registered(workflow_type: str, plan: BaselinePlan) -> BaselinePlan:
    found: BaselinePlan = plans.PLANS.get(workflow_type, plan)
    return found


def _raw(payloads: Sequence[Any]) -> list[RawValue]:
    return [RawValue(p) for p in payloads]

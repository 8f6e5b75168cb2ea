"""``make bench``: how fast Gatekeeper is, measured side by side with bare Temporal.

    python -m workers.bench [--releases 200] [--parked 1000] [--json-out bench-results.json]

On one fresh file-backed dev server (SQLite, WAL) it measures:

- **throughput**: N releases through the whole pipeline (compressed clocks, approvals sent as
  updates by a driver per release, all at once), then N runs of a bare Temporal workflow with
  the same number of activities, updates and timers (:mod:`workers.bench_baseline`); both on an
  in-process worker with the same options. The ratio is what Gatekeeper costs over Temporal.
- **approval round trip**: from sending an approval update to its result, idle and under load.
- **memory**: the RSS of a ``gatekeeper worker`` process (measured alone, from ``/proc``) with M
  releases parked in their government window.
- **access checks** (the registry's own bench, 100,000 grants) and **notification fan-out**
  (:mod:`workers.bench_notify`), when those modules are present.

It prints a table and writes every figure as JSON. The targets are reported, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities import activities_from, open_adapters
from gatekeeper.errors import GatekeeperError
from gatekeeper.logging import configure_logging
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signer import Signer
from workers.bench_baseline import (
    WORKFLOW_NAME,
    BaselinePlan,
    BaselineWorkflow,
    noop,
    plan_from_history,
)
from workers.bench_release import (
    GATES,
    bench_policy,
    drive_release,
    install_policies,
    park_release,
    poll_until,
    seed_partners,
)
from workers.devserver import DevServer
from workers.worker import DEFAULT_ACTIVITY_THREADS, build_worker, key_directory, open_identity

DEFAULT_RELEASES = 200
DEFAULT_PARKED = 1000
DEFAULT_JSON = Path("bench-results.json")
#: Compressed clocks of the throughput run (the parked releases keep the real 30 days).
WINDOW = timedelta(seconds=1)
PARTNER_PERIOD = timedelta(seconds=1)
PARKED_WINDOW = timedelta(days=30)
#: Releases (and baselines) run one at a time, for the idle approval round trip; their clocks
#: are shorter still, since only the approvals are timed.
IDLE_RELEASES = 20
IDLE_CLOCK = timedelta(milliseconds=100)
#: Workflows being started at one time: a burst of hundreds of first workflow tasks (each builds
#: its sandbox) would queue past the 10 s workflow-task timeout on two cores.
STARTS_IN_FLIGHT = 20
#: Parked releases in review at once (the rest queue behind them).
PARK_CONCURRENCY = 50
#: Targets from the issue; reported beside the figures, never asserted.
TARGET_RATIO = 1.3
TARGET_APPROVAL_P99_MS = 50.0
TARGET_PARKED_RSS_MB = 300.0


@dataclass(frozen=True)
class Options:
    releases: int = DEFAULT_RELEASES
    parked: int = DEFAULT_PARKED
    json_out: Path = DEFAULT_JSON
    fanout_partners: int | None = None
    access: bool = True
    only_pipeline: bool = False


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 2) if samples else float("nan"),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2) if samples else float("nan"),
    }


async def timed(runs: Sequence[Awaitable[object]]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*runs)
    return time.perf_counter() - began


# --- identity: signed requests, as in production --------------------------------------------


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


# --- throughput and latency ----------------------------------------------------------------


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


def history_bytes(events: Sequence[HistoryEvent]) -> int:
    """A history's serialized size: what the server stores and counts against its limits."""
    return History(events=events).ByteSize()


async def drive_baseline(
    client: Client,
    task_queue: str,
    plan: BaselinePlan,
    latencies: list[float],
    *,
    starting: asyncio.Semaphore | None = None,
) -> str:
    """The baseline's driver: the same sleeping, polling and update pattern as
    :func:`~workers.bench_release.drive_release`. Returns the workflow id."""
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


# --- memory ---------------------------------------------------------------------------------


def process_memory_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of one process, from ``/proc`` (Linux)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return {"rss_mb": round(fields["VmRSS"], 1), "peak_rss_mb": round(fields["VmHWM"], 1)}


async def bench_parked(server: DevServer, scratch: Path, count: int) -> dict[str, Any]:
    """A ``gatekeeper worker`` process alone, with ``count`` releases in their 30-day window."""
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


# --- the other engineers' benches (optional) ------------------------------------------------


def bench_access(scratch: Path) -> dict[str, Any] | None:
    """The registry's access-check bench (100,000 grants), if the registry ships one."""
    if importlib.util.find_spec("gatekeeper.adapters.registry.bench") is None:
        return None
    module = importlib.import_module("gatekeeper.adapters.registry.bench")
    result = module.run_benchmark(scratch)
    figures: dict[str, Any] = dict(vars(result))
    return figures


async def bench_fanout(
    client: Client, scratch: Path, partners: int | None
) -> dict[str, Any] | None:
    """The notification fan-out bench, if ``workers.bench_notify`` exists."""
    if importlib.util.find_spec("workers.bench_notify") is None:
        return None
    module = importlib.import_module("workers.bench_notify")
    kwargs = {"partners": partners} if partners else {}
    result = await module.bench_fanout(client, scratch, **kwargs)
    figures: dict[str, Any] = result.as_dict()
    return figures


# --- the whole run --------------------------------------------------------------------------


async def run_bench(options: Options, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every measurement on one fresh dev server; return the figures."""
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "targets": {
            "ratio_max": TARGET_RATIO,
            "approval_p99_ms_max": TARGET_APPROVAL_P99_MS,
            "parked_rss_mb_max": TARGET_PARKED_RSS_MB,
        },
    }
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = await _start_server(scratch / "temporal")
        try:
            say(f"dev server on {server.target} (SQLite, WAL) in {scratch}")
            say(f"pipeline: {options.releases} releases, then {options.releases} baselines …")
            results["pipeline"] = await bench_pipeline(
                server.client, _dir(scratch, "pipeline"), options.releases
            )
            if not options.only_pipeline:
                say(f"memory: {options.parked} releases parked in a worker process …")
                results["parked"] = await bench_parked(
                    server, _dir(scratch, "parked"), options.parked
                )
                say("notification fan-out …")
                results["fanout"] = await bench_fanout(
                    server.client, _dir(scratch, "fanout"), options.fanout_partners
                )
        finally:
            await server.stop()
        if options.access and not options.only_pipeline:
            say("access checks over 100,000 grants …")
            results["access"] = await asyncio.to_thread(bench_access, _dir(scratch, "access"))
        else:
            results["access"] = None
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


async def _start_server(data_dir: Path, attempts: int = 3) -> DevServer:
    """A started dev server on a free port; a start that fails (a port another process took in
    the meantime) is tried again on another."""
    for attempt in range(attempts):
        server = DevServer(data_dir, port=_free_port(), headless=True)
        try:
            await server.start()
            return server
        except GatekeeperError:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def _dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render(results: dict[str, Any]) -> Table:
    """The figures as one table, with the targets beside them."""
    table = Table(title="Gatekeeper bench", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")

    def row(measure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        mark = "" if ok is None else ("[green]met[/]" if ok else "[red]missed[/]")
        table.add_row(measure, value, target, mark)

    p = results["pipeline"]
    shape = p["shape"]
    row(
        f"releases/s ({p['releases']} through the pipeline)",
        f"{p['releases_per_second']:.2f}",
    )
    row(
        f"baseline/s ({shape['activities']} activities, {shape['updates']} updates, "
        f"{shape['timers']} timers each)",
        f"{p['baseline_per_second']:.2f}",
    )
    row(
        "ratio baseline / releases",
        f"{p['ratio']:.2f}x",
        f"≤ {TARGET_RATIO}x",
        p["ratio"] <= TARGET_RATIO,
    )
    for label, key in (("idle", "approval_idle"), ("under load", "approval_loaded")):
        figures = p[key]
        row(
            f"approval round trip {label} p50 / p99",
            f"{figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} ms",
            f"p99 < {TARGET_APPROVAL_P99_MS:g} ms",
            figures["p99_ms"] < TARGET_APPROVAL_P99_MS,
        )
    for label, key in (("idle", "baseline_update_idle"), ("under load", "baseline_update_loaded")):
        base = p[key]
        row(f"baseline update {label} p50 / p99", f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f} ms")
    row(
        "history per completed release (bare baseline)",
        f"{p['history_bytes'] / 1024:.0f} KiB, {shape['history_events']} events "
        f"({p['baseline_history_bytes'] / 1024:.0f} KiB, {shape['baseline_history_events']})",
    )
    parked = results.get("parked")
    if parked is None:
        return table
    rss = parked["with_parked"]
    row(
        f"worker RSS with {parked['parked']} releases parked (peak)",
        f"{rss['rss_mb']:.0f} MB ({rss['peak_rss_mb']:.0f})",
        f"< {TARGET_PARKED_RSS_MB:g} MB",
        rss["peak_rss_mb"] < TARGET_PARKED_RSS_MB,
    )
    row("worker RSS idle", f"{parked['idle_worker']['rss_mb']:.0f} MB")
    access = results.get("access")
    if access:
        row(
            f"access check p50 / p99 ({access['grants']:,} grants)",
            f"{access['check_p50_us']:.1f} / {access['check_p99_us']:.1f} µs",
        )
    else:
        row("access check", "skipped (no registry bench)")
    fanout = results.get("fanout")
    if fanout:
        row(
            f"notification fan-out ({fanout['partners']:,} partners)",
            f"{fanout['fanout_seconds']:.2f} s, {fanout['history_bytes'] / 1024:.0f} KiB history",
        )
    else:
        row("notification fan-out", "skipped (no workers.bench_notify)")
    return table


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m workers.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--releases",
        type=int,
        default=DEFAULT_RELEASES,
        help="releases (and baselines) in the throughput run",
    )
    parser.add_argument(
        "--parked", type=int, default=DEFAULT_PARKED, help="releases parked for the memory figure"
    )
    parser.add_argument(
        "--json-out", type=Path, default=DEFAULT_JSON, help="where to write the figures"
    )
    parser.add_argument(
        "--fanout-partners", type=int, default=None, help="cohort size of the fan-out bench"
    )
    parser.add_argument("--no-access", action="store_true", help="skip the access-check bench")
    parser.add_argument(
        "--only-pipeline",
        action="store_true",
        help="only the pipeline (throughput, latency, history bytes): no memory, fan-out, access",
    )
    args = parser.parse_args(argv)
    if args.releases < 1 or args.parked < 1:
        parser.error("--releases and --parked must be at least 1")
    return Options(
        releases=args.releases,
        parked=args.parked,
        json_out=args.json_out,
        fanout_partners=args.fanout_partners,
        access=not args.no_access,
        only_pipeline=args.only_pipeline,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    # ERROR: under full load the SDK warns about every slow workflow task, which the figures
    # already say.
    configure_logging(Settings(log_level="ERROR", log_format="console"))
    console = Console()
    began = time.perf_counter()
    try:
        results = asyncio.run(run_bench(options, say=lambda text: console.print(f"[dim]{text}[/]")))
    except GatekeeperError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False)
        sys.exit(err.exit_code)
    results["bench_seconds"] = round(time.perf_counter() - began, 1)
    options.json_out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(render(results))
    console.print(f"figures written to {options.json_out} ({results['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()

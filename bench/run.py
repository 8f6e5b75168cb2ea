"""The whole run: one fresh dev server, every measurement, the figures as JSON and a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.client import Client

from bench.access import run_benchmark
from bench.access_service import bench_access_service
from bench.console_render import bench_console
from bench.notify import bench_fanout as notify_fanout
from bench.parked import bench_parked
from bench.pipeline import bench_pipeline
from bench.profile import hotspots, profiling
from bench.report import TARGETS, render
from gatekeeper.errors import GatekeeperError
from gatekeeper.logging import configure_logging
from gatekeeper.settings import Settings
from workers.devserver import DevServer

DEFAULT_RELEASES = 200
DEFAULT_PARKED = 1000
DEFAULT_JSON = Path("bench-results.json")


@dataclass(frozen=True)
class Options:
    releases: int = DEFAULT_RELEASES
    parked: int = DEFAULT_PARKED
    json_out: Path = DEFAULT_JSON
    fanout_partners: int | None = None
    access: bool = True
    only_pipeline: bool = False
    console: bool = True
    postgres: bool = True
    profile: Path | None = None


def bench_access(scratch: Path) -> dict[str, Any]:
    """The registry's access-check bench (100,000 grants, :mod:`bench.access`)."""
    return dict(vars(run_benchmark(scratch)))


async def bench_fanout(client: Client, scratch: Path, partners: int | None) -> dict[str, Any]:
    """The notification fan-out bench (:mod:`bench.notify`)."""
    result = await (
        notify_fanout(client, scratch, partners=partners)
        if partners
        else notify_fanout(client, scratch)
    )
    return result.as_dict()


async def run_bench(options: Options, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every measurement on one fresh dev server; return the figures."""
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "targets": dict(TARGETS),
    }
    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = await _start_server(scratch / "temporal")
        try:
            say(f"dev server on {server.target} (SQLite, WAL) in {scratch}")
            say(f"pipeline: {options.releases} releases on SQLite …")
            profile = options.profile
            sampled = (lambda: profiling(profile)) if profile is not None else None
            results["pipeline"] = await bench_pipeline(
                server.client,
                _dir(scratch, "pipeline"),
                options.releases,
                postgres=options.postgres,
                say=say,
                sampled=sampled,
            )
            if profile is not None:
                results["profile"] = hotspots(profile)
            if not options.only_pipeline:
                say(f"memory: {options.parked} releases parked in a worker process …")
                results["parked"] = await bench_parked(
                    server, _dir(scratch, "parked"), options.parked
                )
                say("notification fan-out …")
                results["fanout"] = await bench_fanout(
                    server.client, _dir(scratch, "fanout"), options.fanout_partners
                )
            if options.console and not options.only_pipeline:
                say(f"console: {options.releases} releases in the namespace, each page rendered …")
                results["console"] = await bench_console(
                    server.client, _dir(scratch, "console"), releases=options.releases, say=say
                )
        finally:
            await server.stop()
        if options.access and not options.only_pipeline:
            say("access checks over 100,000 grants …")
            results["access"] = await asyncio.to_thread(bench_access, _dir(scratch, "access"))
            say("access service: decisions over HTTP and through nginx, enforcement, memory …")
            results["access_service"] = await bench_access_service(_dir(scratch, "access-service"))
        else:
            results["access"] = results["access_service"] = None
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


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="``make bench``: how fast Gatekeeper is, measured side by side with bare Temporal.",
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
    parser.add_argument(
        "--no-access",
        action="store_true",
        help="skip the access-check and access-service benches",
    )
    parser.add_argument(
        "--no-console", action="store_true", help="skip the console's render-time bench"
    )
    parser.add_argument(
        "--no-postgres",
        action="store_true",
        help="skip the throughput run with the worker's registry on PostgreSQL",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample the process with py-spy while the releases run (raw stacks to FILE) and "
        "report the hotspots",
    )
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
        console=not args.no_console,
        only_pipeline=args.only_pipeline,
        postgres=not args.no_postgres,
        profile=args.profile,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    # ERROR: under full load the SDK warns about every slow workflow task, which the figures
    # already say.
    configure_logging(Settings(log_level="ERROR", log_format="console"))
    console = Console()
    if not console.is_terminal:  # a log or a pipe: the table's own width, not 80 columns
        console = Console(width=160)
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

"""The console's server render time: each page rendered 100 times with 200 releases in the
namespace, p50 and p90 of the time the app takes to answer.

A real worker runs the releases (the bench policy with real clocks, so nothing moves on its own
while pages are timed): a quarter parked in their government window, a quarter with one approval
of three, the rest waiting for their whole internal review; one access order in force. The
console app (:func:`gatekeeper.console.create_app`) is driven in process through its ASGI
interface (``httpx.ASGITransport``), signed in by the development sign-in as a safety reviewer,
so what is timed is the server's work only (routing, the Temporal queries and visibility list,
the template), not a network or a browser. Pages: the inbox, the release list, one release page
and the orders page.

``python -m bench.console_render`` runs it alone on a fresh dev server; ``make bench`` runs it
with the rest (:mod:`bench.run`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities import activities_from, open_adapters
from bench.figures import percentile
from bench.pipeline import STARTS_IN_FLIGHT, bench_identity
from bench.release import (
    GATES,
    SUBMITTER,
    approve,
    at_gate,
    bench_policy,
    bench_ref,
    bench_spec,
    park_release,
    poll_until,
    seed_partners,
)
from gatekeeper.adapters.policy_store import PolicyStore, versioned_by_content
from gatekeeper.models import Policy
from gatekeeper.models.orders import OrderSpec
from gatekeeper.orders import Orders
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from workers.worker import DEFAULT_ACTIVITY_THREADS, build_worker, key_directory

DEFAULT_RELEASES = 200
DEFAULT_RENDERS = 100
#: Renders of each page before timing (templates compiled, caches and connections warm).
WARMUP = 5
#: Who the pages are rendered for: a safety reviewer (their inbox holds most releases).
VIEWER = "sam.safety"
PAGES = ("inbox", "releases", "release", "orders")
#: Who applies the bench's access order (the bench policy's operator).
OPERATOR = "olga.ops"


def install_default(registry_url: str, policy: Policy) -> None:
    """Install ``policy`` as the store's default (the console reads its roster from it)."""
    with PolicyStore(registry_url) as store:
        store.install(versioned_by_content(policy), by=SUBMITTER, default=True)


async def populate(releases: Releases, policy: Policy, count: int, run: str) -> list[str]:
    """``count`` releases: every 4th parked in its government window, every 4th (+1) with one
    internal approval, the rest waiting for their internal review. Returns their ids."""
    starting = asyncio.Semaphore(STARTS_IN_FLIGHT)
    stage, approvers = GATES[0]

    async def one(n: int) -> str:
        release_id = f"console-{run}-{n:03d}"
        async with starting:
            if n % 4 == 0:
                await park_release(releases, release_id, policy)
                return release_id
            await releases.start(bench_spec(release_id), bench_ref(policy))

        async def ready() -> bool:
            return at_gate(await releases.status(release_id), stage)

        await poll_until(ready, within=600)
        if n % 4 == 1:
            decider, role = approvers[0]
            await approve(releases, release_id, decider, role)
        return release_id

    return list(await asyncio.gather(*(one(n) for n in range(count))))


@contextlib.asynccontextmanager
async def console_client(settings: Settings, client: Client) -> AsyncIterator[Any]:
    """An httpx client on the console app in process (lifespan run), signed in as
    :data:`VIEWER` through the development sign-in (the ASGI client is on loopback)."""
    import httpx

    from gatekeeper.console import ConsoleSettings, create_app

    app = create_app(
        ConsoleSettings(
            gatekeeper=settings,
            session_secret=secrets.token_urlsafe(32),
            dev_sign_in=True,
            client=client,
        )
    )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8400") as http,
    ):
        page = await http.get("/signin")
        page.raise_for_status()
        token = _csrf(page.text)
        signed = await http.post("/signin/dev", data={"person": VIEWER, "csrf_token": token})
        if signed.status_code != 303:
            raise RuntimeError(f"dev sign-in failed: {signed.status_code} {signed.text[:200]}")
        yield http


def _csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf_token"\s+value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"\s+name="csrf_token"', html
    )
    if found is None:
        raise RuntimeError("the sign-in page carries no CSRF token")
    return found.group(1)


async def time_page(http: Any, path: str, renders: int) -> dict[str, float]:
    """p50/p90/max (ms) of ``renders`` sequential GETs of ``path`` (after :data:`WARMUP`)."""
    samples: list[float] = []
    for n in range(WARMUP + renders):
        began = time.perf_counter()
        response = await http.get(path)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
        if n >= WARMUP:
            samples.append(elapsed)
    return {
        "renders": renders,
        "p50_ms": round(statistics.median(samples) * 1000, 1),
        "p90_ms": round(percentile(samples, 0.9) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "bytes": len(response.content),
    }


async def bench_console(
    client: Client,
    scratch: Path,
    *,
    releases: int = DEFAULT_RELEASES,
    renders: int = DEFAULT_RENDERS,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Populate the namespace with ``releases`` releases, then time each page."""
    settings = Settings(
        task_queue=f"bench-console-{uuid.uuid4().hex[:6]}",
        data_dir=scratch,
        keys_dir=scratch / "keys",
    )
    policy = bench_policy(timedelta(days=30), timedelta(days=14), notify=False)
    await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(seed_partners, settings.effective_registry_url)
    signer = await asyncio.to_thread(bench_identity, settings, [p.id for p in policy.roster])
    await asyncio.to_thread(install_default, settings.effective_registry_url, policy)
    adapters = await asyncio.to_thread(open_adapters, settings)
    api = Releases(client, settings.task_queue, signer=signer)
    figures: dict[str, Any] = {"release_count": releases, "renders": renders}
    try:
        with (
            key_directory(settings.task_queue, adapters.identity),
            ThreadPoolExecutor(DEFAULT_ACTIVITY_THREADS) as executor,
        ):
            worker = build_worker(
                client,
                settings,
                activities=activities_from(adapters, client),
                activity_executor=executor,
            )
            async with worker:
                began = time.perf_counter()
                run = uuid.uuid4().hex[:6]
                ids = await populate(api, policy, releases, run)
                # One order in force (on the model's next version: no release here is held by
                # it), so the Orders page has a row to render.
                await Orders(client, settings.task_queue, signer=signer).apply(
                    OrderSpec(
                        order_id=f"order-{run}",
                        models=["bench-model-next"],
                        scope="everyone",
                        required_safeguards=["misuse-classifier-v2"],
                        reason="export rule (bench)",
                    ),
                    OPERATOR,
                )
                figures["populate_seconds"] = round(time.perf_counter() - began, 1)
                say(f"console: {releases} releases in place; rendering each page {renders} times …")
                # A release waiting for its reviewers (one approval in): the page does the most.
                shown = ids[1] if len(ids) > 1 else ids[0]
                paths = {
                    "inbox": "/inbox",
                    "releases": "/releases",
                    "release": f"/releases/{shown}",
                    "orders": "/orders",
                }
                async with console_client(settings, client) as http:
                    for name in PAGES:
                        figures[name] = await time_page(http, paths[name], renders)
    finally:
        adapters.close()
    return figures


def rows(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's rows: one per page, p50 / p90."""
    return [
        (
            f"console {name} render p50 / p90 ({figures['release_count']} releases)",
            f"{figures[name]['p50_ms']:.1f} / {figures[name]['p90_ms']:.1f} ms",
        )
        for name in PAGES
        if name in figures
    ]


async def _main(releases: int, renders: int) -> dict[str, Any]:
    from bench.run import _start_server

    with tempfile.TemporaryDirectory(prefix="gatekeeper-bench-console-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = await _start_server(scratch / "temporal")
        try:
            return await bench_console(
                server.client, scratch / "console", releases=releases, renders=renders
            )
        finally:
            await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    import json

    from gatekeeper.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m bench.console_render", description=__doc__)
    parser.add_argument("--releases", type=int, default=DEFAULT_RELEASES)
    parser.add_argument("--renders", type=int, default=DEFAULT_RENDERS)
    args = parser.parse_args(argv)
    configure_logging(Settings(log_level="ERROR", log_format="console"))
    figures = asyncio.run(_main(args.releases, args.renders))
    print(json.dumps(figures, indent=2))
    for label, value in rows(figures):
        print(f"{label}: {value}")


if __name__ == "__main__":
    main()

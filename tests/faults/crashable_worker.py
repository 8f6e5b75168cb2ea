"""A Gatekeeper worker process for fault tests: ``python -m tests.faults.crashable_worker``.

It is the production worker (``build_worker`` with the real activities and embedded adapters,
configured from the environment) with two differences a test needs:

- a sticky-queue timeout of one second (``GK_FAULT_STICKY_SECONDS`` sets another), so once it is
  SIGKILLed its cached releases move to the replacement worker after a second instead of the
  SDK's ten;
- with ``GK_FAULT_ROLE=workflows`` it runs only workflows, with ``activities`` only activities,
  so a test can kill the worker holding a release without killing an activity in flight (whose
  start-to-close timeout would otherwise stall the release for minutes);
- with ``GK_FAULT_HANG_AFTER_GRANT=<file>``, the registry grants for real, writes ``<file>`` and
  then never returns: the side effect has happened but Temporal has not heard of it, which is
  the moment a crash is most dangerous for exactly-once effects.
"""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from activities import activities_from, open_adapters
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.client import connect
from gatekeeper.models.io import GrantRequest, GrantResult
from gatekeeper.settings import Settings
from workers.worker import build_worker, key_directory, shutdown_signals

STICKY_TIMEOUT = timedelta(seconds=1)


class HangAfterGrant:
    """The real registry, except that a grant never returns once it has been made."""

    def __init__(self, registry: AccessRegistry, marker: Path) -> None:
        self._registry = registry
        self._marker = marker

    def grant_for_cohorts(self, request: GrantRequest) -> GrantResult:
        result = self._registry.grant_for_cohorts(request)
        self._marker.write_text(request.idempotency_key)
        threading.Event().wait()  # until the process is killed
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


async def main() -> None:
    settings = Settings.from_env()
    client = await connect(settings)
    adapters = await asyncio.to_thread(open_adapters, settings)
    marker = os.environ.get("GK_FAULT_HANG_AFTER_GRANT")
    if marker:
        adapters.registry = HangAfterGrant(adapters.registry, Path(marker))  # type: ignore[assignment]
    sticky = os.environ.get("GK_FAULT_STICKY_SECONDS")
    role = os.environ.get("GK_FAULT_ROLE", "both")
    worker = build_worker(
        client,
        settings,
        workflows=[] if role == "activities" else None,
        activities=[] if role == "workflows" else activities_from(adapters),
        activity_threads=8,
        sticky_queue_schedule_to_start_timeout=(
            timedelta(seconds=float(sticky)) if sticky else STICKY_TIMEOUT
        ),
    )
    stop = asyncio.Event()
    with shutdown_signals(stop), key_directory(settings.task_queue, adapters.identity):
        async with worker:
            print("worker ready", flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())

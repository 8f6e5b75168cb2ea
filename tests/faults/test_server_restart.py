"""The file-backed dev server goes away during the government window and comes back on the same
files: the window's durable timer survives, the worker reconnects, and the release completes."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.faults.pipeline import (
    approve_gate,
    awaiting_gate,
    collect,
    fast_policy,
    gatekeeper_worker,
    run_to_launch,
    seed_partners,
    spawn,
    status_until,
    stop,
    timers,
    worker_env,
)
from tests.workers.helpers import free_ports
from workers.devserver import DevServer

WINDOW = 1.5


class TestServerRestart:
    """Stopped cleanly or killed outright, the server restarts from its SQLite file with every
    release where it was; a ``gatekeeper worker`` left running reconnects by itself."""

    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill"])
    async def test_restart_during_government_window(
        self, tmp_path: Path, signum: signal.Signals
    ) -> None:
        [port] = free_ports(1)
        task_queue = f"restart-{uuid.uuid4().hex[:8]}"
        settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
        seed_partners(settings.effective_registry_url)
        servers = [DevServer(tmp_path / "temporal", port=port, headless=True) for _ in range(2)]
        worker = None
        try:
            first = servers[0]
            await first.start()
            environ = worker_env(first.target, task_queue, settings.data_dir)
            worker = await spawn(gatekeeper_worker(), environ, tmp_path / "worker.log")
            releases = Releases(first.client, task_queue, signer=signing.signer())
            release_id = f"restart-{uuid.uuid4().hex[:8]}"
            policy = fast_policy(window=WINDOW)
            await factories.start_release(
                releases, settings.effective_registry_url, factories.spec(release_id), policy
            )
            await status_until(releases, release_id, awaiting_gate("internal_review"))
            await approve_gate(releases, release_id, "internal_review")
            status = await status_until(
                releases, release_id, lambda s: s.stage == "government_testing_window"
            )
            ends = status.government.window_ends_at
            assert ends is not None

            assert first.pid is not None
            os.kill(first.pid, signum)
            await first.stop()
            # Down past the window's end (a deadline on the clock, nothing to be told of): its
            # timer must fire once the server is back.
            await asyncio.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.2)
            assert worker.returncode is None, "the worker must ride out the outage"

            second = servers[1]
            up_at = datetime.now(UTC)
            await second.start()
            releases = Releases(second.client, task_queue, signer=signing.signer())
            outcome = await run_to_launch(releases, release_id, within=90)
            collect(
                settings.data_dir, settings.effective_registry_url, release_id
            ).assert_exactly_once(outcome)
            window = outcome.status.stage_record("government_testing_window")
            assert window is not None and window.ended_at is not None and ends is not None
            assert window.ended_at >= ends, "the window must not end early"
            assert outcome.status.government.window_ends_at == ends
            # The one window timer fired after the server came back, not while it was down.
            history = await releases.handle(release_id).fetch_history()
            [timer] = timers(history, "government testing window")
            assert timer.fired_at is not None and timer.fired_at >= up_at, (timer, up_at)
        finally:
            await stop(worker)
            for server in servers:
                await server.stop()

"""run_worker: runs until told to stop, by an event or a signal, and then stops gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from tests.helpers import eventually
from tests.workers.helpers import WaitForFinishWorkflow
from workers.worker import DEFAULT_ACTIVITY_THREADS, build_worker, run_worker


def _settings(task_queue: str, tmp_path: Path) -> Settings:
    return Settings(task_queue=task_queue, data_dir=tmp_path / "gk", keys_dir=tmp_path / "keys")


def _started(logs: list[MutableMapping[str, Any]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(entry["event"] == "worker started" for entry in logs)

    return check


class TestRunWorker:
    """A worker polls the settings' task queue until its stop event is set, logs where it runs,
    and returns once shut down."""

    async def test_runs_workflows_until_stopped(
        self, client: Client, task_queue: str, tmp_path: Path
    ) -> None:
        stop = asyncio.Event()
        with capture_logs() as logs:
            running = asyncio.create_task(
                run_worker(
                    _settings(task_queue, tmp_path),
                    client=client,
                    stop_event=stop,
                    handle_signals=False,
                    workflows=[WaitForFinishWorkflow],
                    activities=[],
                    local_identity=True,
                )
            )
            handle = await client.start_workflow(
                WaitForFinishWorkflow.run, "w", id=f"w-{uuid.uuid4()}", task_queue=task_queue
            )
            await handle.signal(WaitForFinishWorkflow.finish, "ok")
            assert await asyncio.wait_for(handle.result(), 10) == "w: ok"
            stop.set()
            await asyncio.wait_for(running, 15)

        started = next(entry for entry in logs if entry["event"] == "worker started")
        assert started["task_queue"] == task_queue
        assert started["namespace"] == client.namespace
        assert started["address"] == client.service_client.config.target_host
        assert logs[-1]["event"] == "worker stopped"

    async def test_unknown_namespace_is_a_config_error(
        self, client: Client, tmp_path: Path
    ) -> None:
        elsewhere = await Client.connect(
            client.service_client.config.target_host, namespace=f"missing-{uuid.uuid4().hex[:6]}"
        )

        with pytest.raises(ConfigError, match=r"worker could not start: .*missing-"):
            await asyncio.wait_for(
                run_worker(
                    _settings("tq", tmp_path),
                    client=elsewhere,
                    handle_signals=False,
                    workflows=[WaitForFinishWorkflow],
                    activities=[],
                    local_identity=True,
                ),
                15,
            )

    def test_build_worker_sizes_activities_to_its_threads(
        self, client: Client, tmp_path: Path
    ) -> None:
        worker = build_worker(
            client, _settings("tq", tmp_path), workflows=[WaitForFinishWorkflow], activities=[]
        )
        config = worker.config()

        assert config["task_queue"] == "tq"
        assert config["max_concurrent_activities"] == DEFAULT_ACTIVITY_THREADS
        assert config["activity_executor"] is not None


class TestSignals:
    """SIGTERM asks the worker to stop gracefully; the handlers are removed afterwards."""

    async def test_sigterm_stops_gracefully(
        self, client: Client, task_queue: str, tmp_path: Path
    ) -> None:
        before = signal.getsignal(signal.SIGTERM)
        with capture_logs() as logs:
            running = asyncio.create_task(
                run_worker(
                    _settings(task_queue, tmp_path),
                    client=client,
                    workflows=[WaitForFinishWorkflow],
                    activities=[],
                    local_identity=True,
                )
            )
            await eventually(_started(logs), what="the worker to log that it started", within=10)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(running, 15)

        events = [entry["event"] for entry in logs]
        assert any(event.startswith("shutdown requested") for event in events)
        assert events[-1] == "worker stopped"
        assert signal.getsignal(signal.SIGTERM) == before

"""SIGKILL a worker process in the middle of a release; a replacement finishes the release with
every notification and grant made exactly once and the audit chain intact."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

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
    wait_for_file,
    worker_env,
)

CRASHABLE = [sys.executable, "-m", "tests.faults.crashable_worker"]


class Scene:
    """A data directory, a registry with partners, and the environment every worker shares."""

    def __init__(self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "data"
        self.logs = tmp_path
        self.settings = Settings(task_queue=task_queue, data_dir=self.data_dir)
        seed_partners(self.settings.effective_registry_url)
        self.environ = worker_env(
            env.client.service_client.config.target_host, task_queue, self.data_dir
        )
        self.releases = Releases(env.client, task_queue, signer=signing.signer())

    async def start_release(self, window: float = 2.0) -> str:
        release_id = f"crash-{uuid.uuid4().hex[:8]}"
        policy = fast_policy(window=window)
        await factories.start_release(
            self.releases, self.settings.effective_registry_url, factories.spec(release_id), policy
        )
        return release_id

    def check(self, release_id: str, outcome: object) -> None:
        evidence = collect(self.data_dir, self.settings.effective_registry_url, release_id)
        evidence.assert_exactly_once(outcome)  # type: ignore[arg-type]


async def kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await process.wait()


class TestWorkerKilled:
    """A worker SIGKILLed mid-release is replaced by a plain ``gatekeeper worker``; nothing is
    lost and nothing happens twice."""

    async def test_approval_sent_while_no_worker_lives(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        scene = Scene(env, task_queue, tmp_path)
        first = replacement = None
        try:
            first = await spawn(CRASHABLE, scene.environ, tmp_path / "first.log")
            release_id = await scene.start_release()
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await kill(first)
            # The reviewers approve while no worker lives: the updates wait for one.
            approving = asyncio.create_task(
                approve_gate(scene.releases, release_id, "internal_review")
            )
            await asyncio.sleep(1.0)
            assert not approving.done()
            replacement = await spawn(gatekeeper_worker(), scene.environ, tmp_path / "second.log")
            await asyncio.wait_for(approving, 30)
            outcome = await run_to_launch(scene.releases, release_id, within=60)
            scene.check(release_id, outcome)
        finally:
            await stop(first)
            await stop(replacement)

    async def test_killed_during_government_window(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        scene = Scene(env, task_queue, tmp_path)
        first = replacement = None
        try:
            first = await spawn(CRASHABLE, scene.environ, tmp_path / "first.log")
            release_id = await scene.start_release(window=3.0)
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await approve_gate(scene.releases, release_id, "internal_review")
            await status_until(
                scene.releases, release_id, lambda s: s.stage == "government_testing_window"
            )
            await kill(first)
            description = await scene.releases.handle(release_id).describe()
            assert description.status == WorkflowExecutionStatus.RUNNING
            # The window's timer fires while no worker is alive; the next one carries on.
            await asyncio.sleep(3.5)
            replacement = await spawn(gatekeeper_worker(), scene.environ, tmp_path / "second.log")
            outcome = await run_to_launch(scene.releases, release_id, within=60)
            scene.check(release_id, outcome)
        finally:
            await stop(first)
            await stop(replacement)

    @pytest.mark.slow
    async def test_killed_after_grant_before_reporting_it(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        """The registry granted, the worker died before telling Temporal: the grant activity is
        retried on the replacement after its start-to-close timeout (a minute) and the registry
        answers from its idempotency record instead of granting again."""
        scene = Scene(env, task_queue, tmp_path)
        marker = tmp_path / "granted"
        first = replacement = None
        try:
            environ = {**scene.environ, "GK_FAULT_HANG_AFTER_GRANT": str(marker)}
            first = await spawn(CRASHABLE, environ, tmp_path / "first.log")
            release_id = await scene.start_release(window=1.0)
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await approve_gate(scene.releases, release_id, "internal_review")
            await wait_for_file(marker, within=30)
            granted = collect(scene.data_dir, scene.settings.effective_registry_url, release_id)
            assert granted.grant_keys, "the registry should have granted before the crash"
            await kill(first)

            replacement = await spawn(gatekeeper_worker(), scene.environ, tmp_path / "second.log")
            outcome = await run_to_launch(scene.releases, release_id, within=150)
            scene.check(release_id, outcome)
            after = collect(scene.data_dir, scene.settings.effective_registry_url, release_id)
            assert after.grant_keys == granted.grant_keys, "the retry must not grant again"
        finally:
            await stop(first)
            await stop(replacement)

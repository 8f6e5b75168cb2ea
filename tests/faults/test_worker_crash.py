"""SIGKILL a worker process in the middle of a release; a replacement finishes the release with
every notification and grant made exactly once and the audit chain intact."""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from gatekeeper.models import DecisionKind, UpdateResult
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signed_requests import release_binding
from tests import factories, signing
from tests.faults.pipeline import (
    Timer,
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
    task_workers,
    timers,
    wait_for_file,
    worker_env,
)
from tests.helpers import eventually, settled

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


async def pending_workflow_task(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The workflow task the server holds for the release, if any (``state, attempt``)."""
    description = await handle.describe()
    raw = description.raw_description
    if not raw.HasField("pending_workflow_task"):
        return None
    task = raw.pending_workflow_task
    return f"state {task.state}, attempt {task.attempt}"


def accepted_updates(history: WorkflowHistory, name: str) -> list[int]:
    """The event id of each acceptance of an update called ``name``."""
    return [
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        == name
    ]


WINDOW_TIMER = "government testing window"


def window_timers_of(history: WorkflowHistory) -> list[Timer]:
    return timers(history, WINDOW_TIMER)


async def window_timers(handle: WorkflowHandle[Any, Any]) -> list[Timer]:
    return window_timers_of(await handle.fetch_history())


async def send_all(
    handle: WorkflowHandle[Any, Any], requests: list[dict[str, Any]]
) -> list[UpdateResult]:
    """Send every approval at once, as raw updates (already signed), until each is answered
    (a refused one raises)."""
    return list(
        await asyncio.gather(
            *(
                handle.execute_update(DecisionKind.APPROVE.value, r, result_type=UpdateResult)
                for r in requests
            )
        )
    )


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
            handle = scene.releases.handle(release_id)
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await settled(handle)  # what it started at the gate is done
            # Signed now (a signature binds the release's status, which only a worker answers).
            binding = release_binding(await scene.releases.status(release_id))
            signed = [
                signing.signer().sign("approve", factories.decision(decider, role), binding)
                for decider, role in factories.INTERNAL_REVIEW
            ]
            await kill(first)
            # The reviewers approve while no worker lives: the server holds the approvals in a
            # workflow task that no worker takes, and the updates wait for one.
            approving = asyncio.create_task(send_all(handle, signed))
            await eventually(
                lambda: pending_workflow_task(handle),
                what="the server to hold the approval in a workflow task",
                show=str,
            )
            assert not approving.done(), "an approval was answered while no worker lived"
            replacement = await spawn(gatekeeper_worker(), scene.environ, tmp_path / "second.log")
            answered = await asyncio.wait_for(approving, 30)
            assert len(answered) == len(factories.INTERNAL_REVIEW)
            # The approvals were accepted by the replacement: the task that accepted the first
            # one, and every task after it, was completed by the replacement.
            history = await handle.fetch_history()
            accepted = accepted_updates(history, DecisionKind.APPROVE.value)
            assert len(accepted) == len(factories.INTERNAL_REVIEW)
            tasks = task_workers(history)
            accepting = max(event_id for event_id, _, _ in tasks if event_id < accepted[0])
            after_kill = [pid for event_id, _, pid in tasks if event_id >= accepting]
            assert set(after_kill) == {replacement.pid}, (after_kill, first.pid)
            assert first.pid in {pid for _, _, pid in tasks}, "the first worker ran the start"
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
            handle = scene.releases.handle(release_id)
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await approve_gate(scene.releases, release_id, "internal_review")
            await status_until(
                scene.releases, release_id, lambda s: s.stage == "government_testing_window"
            )
            await eventually(
                lambda: window_timers(handle),
                what="the window's timer to start",
                show=str,
            )
            await kill(first)
            down_at = datetime.now(UTC)
            description = await handle.describe()
            assert description.status == WorkflowExecutionStatus.RUNNING
            # The window's timer fires while no worker is alive: the server writes TimerFired
            # into the history on its own, and nothing else happens until a worker comes.
            [timer] = await eventually(
                lambda: window_timers(handle),
                lambda found: len(found) == 1 and found[0].fired_at is not None,
                what="the window's timer to fire with no worker alive",
                within=30,
                every=0.1,
                show=str,
            )
            assert timer.fired_at is not None
            assert timer.started_at < down_at < timer.fired_at
            up_at = datetime.now(UTC)
            replacement = await spawn(gatekeeper_worker(), scene.environ, tmp_path / "second.log")
            outcome = await run_to_launch(scene.releases, release_id, within=60)
            scene.check(release_id, outcome)
            history = await handle.fetch_history()
            # Still the one window timer (none restarted), fired while no worker lived; every
            # workflow task after it ran on the replacement, which started after it fired.
            assert window_timers_of(history) == [timer]
            after_fire = [pid for _, at, pid in task_workers(history) if at > timer.fired_at]
            assert after_fire and set(after_fire) == {replacement.pid}, (after_fire, first.pid)
            assert timer.fired_at < up_at
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

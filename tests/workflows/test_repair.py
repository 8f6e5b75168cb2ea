"""A release whose history today's code cannot replay is brought back by ``gatekeeper ops repair``
without losing a decision.

The broken history is made on purpose: for one decision the release runs on a worker whose
workflow code differs (:class:`DriftedRelease`, registered under the release workflow's name,
writes an extra memo command with each decision, as a code change shipped without
``workflow.patched`` would). The next worker, running today's code, cannot replay that history:
its workflow task fails on every attempt.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment

from activities import Adapters
from gatekeeper.audit import verify_chain
from gatekeeper.models import (
    Decision,
    DecisionKind,
    ReleaseOutcome,
    ReleaseState,
    UpdateResult,
)
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, replaying, signing
from tests.faults.pipeline import awaiting_gate, fast_policy, run_to_launch, status_until
from tests.helpers import adapters_for, chain_of, running_worker
from tests.security.process import Ran, environment, gatekeeper
from workflows.registry import ALL_WORKFLOWS, AccessOrderWorkflow
from workflows.release import NO_ARGUMENT, ModelReleaseWorkflow
from workflows.requests import Requests


@workflow.defn(name="ModelReleaseWorkflow", sandboxed=False)
class DriftedRelease(ModelReleaseWorkflow):
    """Today's release workflow plus one command per decision: code that drifted from the
    histories it ran."""

    @workflow.run
    async def run(self, payload: RawValue = NO_ARGUMENT) -> ReleaseOutcome:
        return await super().run(payload)

    @property
    def requests(self) -> Requests:
        return DriftedRequests(self)


class DriftedRequests(Requests):
    """The drifted code's requests: each decision writes a memo before it is applied."""

    def apply(
        self,
        request: str,
        actor: str,
        body: Any,
        change: Callable[[], str],
        payload: RawValue,
    ) -> UpdateResult:
        decision = request in {kind.value for kind in DecisionKind}
        if decision and not workflow.unsafe.is_replaying():  # it replays what it did not write
            workflow.upsert_memo({"drift": actor})
        return super().apply(request, actor, body, change, payload)


DRIFTED: list[type] = [DriftedRelease, AccessOrderWorkflow]


class Scene:
    def __init__(self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
        self.env = env
        self.task_queue = task_queue
        self.settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
        self.adapters: Adapters = adapters_for(task_queue, self.settings.data_dir)
        self.releases = Releases(
            env.client,
            task_queue,
            query_timeout=timedelta(seconds=5),
            update_timeout=timedelta(seconds=20),
            signer=signing.signer(),
        )

    @asynccontextmanager
    async def worker(self, workflows: list[type]) -> AsyncIterator[None]:
        async with running_worker(
            self.env.client,
            self.task_queue,
            self.adapters,
            workflows=workflows,
            threads=4,
            # No sticky queue: the next worker takes over at once, and replays from scratch.
            max_cached_workflows=0,
        ):
            yield

    async def approve(self, release_id: str, decider: str, role: str) -> UpdateResult:
        return await self.releases.decide(
            release_id, DecisionKind.APPROVE, factories.decision(decider, role)
        )


@pytest.fixture
def scene(env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> Iterator[Scene]:
    s = Scene(env, task_queue, tmp_path)
    yield s
    s.adapters.close()


async def cli(scene: Scene, *args: str) -> Ran:
    env = environment(
        TEMPORAL_ADDRESS=scene.env.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=scene.env.client.namespace,
        GATEKEEPER_TASK_QUEUE=scene.task_queue,
        GATEKEEPER_DATA_DIR=str(scene.settings.data_dir),
    )
    return await gatekeeper(*args, env=env)


def approvers(decisions: list[Decision]) -> set[str]:
    return {d.person for d in decisions if d.kind is DecisionKind.APPROVE and d.valid}


class TestRepair:
    """``gatekeeper ops repair`` resets a release that does not replay to its last good task and
    re-applies every later decision; the release then finishes."""

    async def test_drifted_history_is_repaired_without_losing_a_decision(
        self, scene: Scene
    ) -> None:
        release_id = f"drift-{uuid.uuid4().hex[:8]}"
        (sam, safety), (sec, security), (lee, legal) = factories.INTERNAL_REVIEW
        async with scene.worker(ALL_WORKFLOWS):
            await factories.start_release(
                scene.releases, scene.adapters.policies, factories.spec(release_id), fast_policy()
            )
            await status_until(scene.releases, release_id, awaiting_gate("internal_review"))
            await scene.approve(release_id, sam, safety)
        async with scene.worker(DRIFTED):
            await scene.approve(release_id, sec, security)
        handle = scene.releases.handle(release_id)
        broken_run = (await handle.describe()).run_id

        async with scene.worker(ALL_WORKFLOWS):
            # The suite's replay check sees what today's worker sees: this history is broken.
            checked = await replaying.check_task_queue(scene.env.client, scene.task_queue)
            assert len(checked.failures) == 1, checked
            assert broken_run in checked.failures[0]
            assert "Nondeterminism" in checked.failures[0]
            replaying.exempt(broken_run)  # the new run must still replay at teardown

            # Every command says the release needs repair (exit 9), none "decision refused".
            status, approve, export = await asyncio.gather(
                cli(scene, "release", "status", release_id),
                cli(scene, "review", "approve", release_id, "--as", lee, "--role", legal),
                cli(scene, "audit", "export", release_id),
            )
            for ran in (status, approve, export):
                assert ran.code == 9, ran
                line = ran.stderr.strip()
                assert "\n" not in line, line
                assert f"release {release_id} needs repair" in line
                assert f"gatekeeper ops repair {release_id}" in line
            assert (await handle.describe()).run_id == broken_run  # nothing changed

            repaired = await cli(scene, "ops", "repair", release_id, "--json")
            assert repaired.code == 0, repaired
            report = json.loads(repaired.stdout)
            assert report["repaired"] is True
            assert report["run_id"] == broken_run
            assert report["reapplied"] == ["update approve"]
            current = await handle.describe()
            assert current.run_id == report["new_run_id"] != broken_run
            assert current.status is WorkflowExecutionStatus.RUNNING

            # Both approvals made before are there; a second repair finds nothing to do.
            before = await scene.releases.status(release_id)
            assert approvers(before.gates["internal_review"].decisions) == {sam, sec}
            again = await cli(scene, "ops", "repair", release_id)
            assert again.code == 0, again
            assert "replays cleanly" in again.stdout and "nothing to repair" in again.stdout
            assert (await handle.describe()).run_id == report["new_run_id"]

            # The release takes the last approval and launches, every decision in its audit.
            await scene.approve(release_id, lee, legal)
            outcome = await run_to_launch(scene.releases, release_id)
            assert outcome.status.state is ReleaseState.LAUNCHED
            assert approvers(outcome.status.gates["internal_review"].decisions) == {sam, sec, lee}
            chain = chain_of(outcome, scene.adapters.audit_store)
            check = verify_chain(chain)
            assert check.ok, check.reason
            audited = {e.actor for e in chain if e.action == "decision_approve"}
            assert {sam, sec, lee} <= audited, audited

            # An ended release is never reset.
            ended = await cli(scene, "ops", "repair", release_id)
            assert ended.code == 1, ended
            assert f"release {release_id} has ended (workflow completed)" in ended.stderr
            assert (await handle.describe()).run_id == report["new_run_id"]

    async def test_unknown_release(self, scene: Scene) -> None:
        """A release that does not exist is exit 5, as everywhere."""
        ran = await cli(scene, "ops", "repair", "no-such-release")
        assert ran.code == 5, ran
        assert "no release 'no-such-release'" in ran.stderr

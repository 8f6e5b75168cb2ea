"""A real worker (real activities, files under tmp_path) per test, on the session dev server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import Adapters, activities_from, open_adapters
from gatekeeper.adapters.registry import Partner
from gatekeeper.models import (
    DecisionKind,
    Policy,
    ReleaseOutcome,
    ReleaseSpec,
    ReleaseStatus,
    UpdateResult,
    VettingTier,
)
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories
from workers.worker import key_directory, workflow_runner
from workflows.registry import ALL_WORKFLOWS

PARTNERS = [
    Partner(
        id="acme-labs", name="Acme Labs", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="us"
    ),
    Partner(id="brit-ai", name="Brit AI", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="gb"),
    Partner(id="invited-co", name="Invited Co", tier=VettingTier.INVITE_ONLY, jurisdiction="us"),
    Partner(
        id="far-away", name="Far Away", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="jp"
    ),
]


@dataclass
class Harness:
    """Everything a workflow test touches: the env, the releases API, and the adapters' files."""

    env: WorkflowEnvironment
    releases: Releases
    adapters: Adapters
    data_dir: Path

    async def start(
        self, spec: ReleaseSpec | None = None, policy: Policy | None = None
    ) -> ReleaseStatus:
        """Install ``policy`` (default: the factory's) into the worker's store and start ``spec``
        under it by reference."""
        spec = spec or factories.spec(f"r-{uuid.uuid4().hex[:10]}")
        return await factories.start_release(self.releases, self.adapters.policies, spec, policy)

    def install(self, policy: Policy, *, default: bool = False) -> str:
        """Install ``policy`` into the worker's store; the reference to start with."""
        return factories.install_policy(self.adapters.policies, policy, default=default)

    def handle(self, release_id: str) -> WorkflowHandle:  # type: ignore[type-arg]
        return self.releases.handle(release_id)

    async def approve(
        self, release_id: str, decider: str, role: str, **extra: object
    ) -> UpdateResult:
        return await self.releases.decide(
            release_id, DecisionKind.APPROVE, factories.decision(decider, role, **extra)
        )

    async def pass_internal_review(self, release_id: str) -> None:
        for decider, role in factories.INTERNAL_REVIEW:
            await self.approve(release_id, decider, role)

    async def launch(self, release_id: str) -> ReleaseOutcome:
        """Drive a release waiting at internal review through every stage to its outcome, with
        the default approvals and clocks (time skipped through the window and partner period)."""
        await self.pass_internal_review(release_id)
        await self.at_stage(release_id, "government_testing_window")
        await self.skip(release_id, 31)
        await self.at_stage(release_id, "vetted_partner_access")
        return await self.launch_from_partner_access(release_id)

    async def launch_from_partner_access(self, release_id: str) -> ReleaseOutcome:
        """From partner access: the period passes, security and the executive approve."""
        await self.skip(release_id, 15)
        await self.until(release_id, lambda s: bool(s.awaiting and "security" in s.awaiting.roles))
        await self.approve(release_id, "sec.two", "security")
        await self.at_stage(release_id, "launch_approval")
        await self.approve(release_id, "eve.exec", "executive")
        outcome: ReleaseOutcome = await self.handle(release_id).result()
        return outcome

    async def until(
        self,
        release_id: str,
        predicate: Callable[[ReleaseStatus], bool],
        *,
        within: float = 15.0,
    ) -> ReleaseStatus:
        """Poll get_status until ``predicate`` holds (the workflow moves on its own)."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + within
        while True:
            status = await self.releases.status(release_id)
            if predicate(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"timed out: stage={status.stage} state={status.state} awaiting={status.awaiting}"
                )
            await asyncio.sleep(0.05)

    async def at_stage(self, release_id: str, stage: str, **kw: float) -> ReleaseStatus:
        return await self.until(
            release_id, lambda s: s.stage == stage and s.awaiting is not None, **kw
        )

    async def skip(self, release_id: str, days: float) -> None:
        await self.env.fast_forward(self.handle(release_id), timedelta(days=days))

    def outbox_lines(self) -> list[dict]:  # type: ignore[type-arg]
        import json

        path = self.data_dir / "outbox.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextlib.asynccontextmanager
async def running_worker(
    env: WorkflowEnvironment, task_queue: str, adapters: Adapters
) -> AsyncIterator[Worker]:
    """A real worker with every workflow and the activities bound to ``adapters``, running on
    ``task_queue`` for the duration of the block, its validators reading keys from
    ``adapters.identity`` (register people with ``tests.identity_fixtures.register_people``)."""
    with (
        ThreadPoolExecutor(max_workers=8) as executor,
        key_directory(task_queue, adapters.identity),
    ):
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=ALL_WORKFLOWS,
            activities=activities_from(adapters),
            workflow_runner=workflow_runner(),
            activity_executor=executor,
            max_concurrent_activities=8,
            # Let in-flight activities finish at teardown instead of being cancelled inside
            # their threads (which can interrupt a file write half-way).
            graceful_shutdown_timeout=timedelta(seconds=5),
        ) as worker:
            yield worker


@pytest_asyncio.fixture(loop_scope="session")
async def harness(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
    adapters = open_adapters(settings)
    for partner in PARTNERS:
        adapters.registry.add_partner(partner)
    # The store's default: what `gatekeeper release start` runs under when no --policy is named.
    factories.install_policy(adapters.policies, factories.policy(), default=True)
    async with running_worker(env, task_queue, adapters):
        yield Harness(env, Releases(env.client, task_queue), adapters, settings.data_dir)
    adapters.close()


Waiter = Callable[[ReleaseStatus], Awaitable[None]]

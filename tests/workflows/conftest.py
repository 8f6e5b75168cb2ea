"""A real worker (real activities, files under tmp_path) per test, on the session dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest_asyncio
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities import Adapters
from gatekeeper.models import (
    DecisionKind,
    Policy,
    ReleaseOutcome,
    ReleaseSpec,
    ReleaseStatus,
    UpdateResult,
)
from gatekeeper.models.audit import AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import (
    PARTNERS,
    adapters_for,
    chain_of,
    running_worker,
    status_until,
    trust_test_keys,
)

#: Re-exported: tests written before :mod:`tests.helpers` import them from here.
__all__ = ["PARTNERS", "Harness", "harness", "running_worker", "trust_test_keys"]


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

    def chain(self, outcome: ReleaseOutcome) -> list[AuditEvent]:
        """The finished release's audit chain, from the worker's audit store (checked to be the
        chain the result names)."""
        return chain_of(outcome, self.adapters.audit_store)

    async def until(
        self,
        release_id: str,
        predicate: Callable[[ReleaseStatus], object],
        *,
        within: float = 15.0,
        what: str = "the release to get there",
    ) -> ReleaseStatus:
        """Until ``predicate`` holds of the release's status (the workflow moves on its own)."""
        return await status_until(self.releases, release_id, predicate, what=what, within=within)

    async def at_stage(self, release_id: str, stage: str, within: float = 15.0) -> ReleaseStatus:
        return await self.until(
            release_id,
            lambda s: s.stage == stage and s.awaiting is not None,
            within=within,
            what=f"waiting at {stage}",
        )

    async def skip(self, release_id: str, days: float) -> None:
        await self.env.fast_forward(self.handle(release_id), timedelta(days=days))

    def outbox_lines(self) -> list[dict]:  # type: ignore[type-arg]
        import json

        path = self.data_dir / "outbox.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest_asyncio.fixture(loop_scope="session")
async def harness(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
    adapters = adapters_for(task_queue, settings.data_dir)
    # The store's default: what `gatekeeper release start` runs under when no --policy is named.
    factories.install_policy(adapters.policies, factories.policy(), default=True)
    async with running_worker(env.client, task_queue, adapters):
        yield Harness(
            env,
            Releases(env.client, task_queue, signer=signing.signer()),
            adapters,
            settings.data_dir,
        )
    adapters.close()


Waiter = Callable[[ReleaseStatus], Awaitable[None]]

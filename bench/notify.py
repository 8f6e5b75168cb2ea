"""Measure one release's notification fan-out to a cohort of thousands of partners.

:func:`bench_fanout` seeds a registry with ``partners`` partners granted access in one cohort,
starts a release whose ``release_started`` notice is routed to that cohort, runs it to the end
on an in-process worker, and reads the workflow's history: how many events, how many bytes, and
how big the one notify activity's request and result were. ``make bench`` calls it; a test
asserts on the same figures.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.worker import Worker

from activities import activities_from, open_adapters
from gatekeeper.adapters.policy_store import versioned_by_content
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.registry.tables import partners as partner_table
from gatekeeper.models.enums import (
    CoveredDesignation,
    NotificationEvent,
    RiskTier,
    Surface,
    VettingTier,
)
from gatekeeper.models.io import GrantRequest
from gatekeeper.models.policy import (
    Cohort,
    LaunchStage,
    NotificationPolicy,
    NotificationRoute,
    Person,
    Policy,
    Recipients,
)
from gatekeeper.models.spec import Artifact, ModelRef, ReleaseSpec
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings

COHORT = "bench-partners"
SUBMITTER = "bench.submitter"


@dataclass(frozen=True)
class FanoutBench:
    """What one fan-out cost. Sizes are protobuf bytes of the workflow's history."""

    partners: int
    deliveries: int
    wall_seconds: float
    fanout_seconds: float
    history_events: int
    history_bytes: int
    notify_activities: int
    notify_request_bytes: int
    notify_result_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_cohort(settings: Settings, registry: AccessRegistry, release_id: str, count: int) -> None:
    """``count`` partners, all granted access to ``release_id`` in :data:`COHORT`."""
    now = datetime.now(UTC)
    # One bulk insert: ``add_partner`` is a transaction per partner, seconds for thousands.
    engine = sa.create_engine(settings.effective_registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(partner_table),
                [
                    {
                        "id": f"partner-{i:05d}",
                        "name": f"Partner {i}",
                        "tier": VettingTier.INVITE_ONLY.value,
                        "jurisdiction": "us",
                        "created_at": now,
                    }
                    for i in range(count)
                ],
            )
    finally:
        engine.dispose()
    registry.grant_for_cohorts(
        GrantRequest(
            idempotency_key=f"{release_id}:bench:grant",
            release_id=release_id,
            stage="bench",
            model=ModelRef(name="bench-model", version="1"),
            cohorts=[cohort()],
            regions=["us"],
            surfaces=[Surface.API],
            requested_at=now,
        )
    )


def cohort() -> Cohort:
    return Cohort(id=COHORT, tiers=[VettingTier.INVITE_ONLY], jurisdictions=["*"])


def fanout_policy() -> Policy:
    """One launch stage; ``release_started`` goes to the cohort, over the outbox."""
    return Policy(
        policy_id="bench-fanout",
        roster=[Person(id=SUBMITTER, name="Bench Submitter", roles=["release_manager"])],
        cohorts=[cohort()],
        stages=[LaunchStage(id="public_launch")],
        notifications=NotificationPolicy(
            routes=[
                NotificationRoute(
                    events=[NotificationEvent.RELEASE_STARTED],
                    to=Recipients(cohorts=[COHORT], people=[SUBMITTER]),
                    channels=["outbox"],
                )
            ]
        ),
    )


def fanout_spec(release_id: str) -> ReleaseSpec:
    return ReleaseSpec(
        release_id=release_id,
        model=ModelRef(name="bench-model", version="1"),
        artifact=Artifact(uri="https://artifacts.example/bench", sha256="0" * 64),
        risk_tier=RiskTier.LOW,
        covered_model=CoveredDesignation.NOT_DESIGNATED,
        submitter=SUBMITTER,
        # No partner access is requested: the cohort hears of the release through the grants
        # seeded in the registry (the policy has no access stage, so the worker would refuse it).
        partner_cohorts=[],
        regions=["us"],
    )


async def bench_fanout(
    client: Client,
    data_dir: Path,
    *,
    partners: int = 5000,
    task_queue: str | None = None,
) -> FanoutBench:
    """Run one release's fan-out to ``partners`` partners on an in-process worker and measure it.

    Args:
        client: a connected client (the pydantic data converter; any namespace).
        data_dir: an empty directory for the worker's adapters (outbox, registry...).
        partners: the cohort's size.
        task_queue: default: a fresh one.
    """
    from workflows.registry import ALL_WORKFLOWS  # the sandbox's import cost is paid only when run

    queue = task_queue or f"bench-notify-{uuid.uuid4().hex[:8]}"
    release_id = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=queue, data_dir=data_dir)
    # Files and SQLite block: keep them off the loop the worker runs on.
    adapters = await asyncio.to_thread(open_adapters, settings)
    try:
        await asyncio.to_thread(seed_cohort, settings, adapters.registry, release_id, partners)
        policy = versioned_by_content(fanout_policy())
        await asyncio.to_thread(adapters.policies.install, policy, by="bench")
        ref = f"{policy.policy_id}@{policy.version}"
        releases = Releases(client, queue)
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with Worker(
                client,
                task_queue=queue,
                workflows=ALL_WORKFLOWS,
                activities=activities_from(adapters),
                activity_executor=executor,
                max_concurrent_activities=4,
                graceful_shutdown_timeout=timedelta(seconds=5),
            ):
                started = time.monotonic()
                await releases.start(fanout_spec(release_id), ref)
                await releases.handle(release_id).result()
                wall = time.monotonic() - started
        history = await releases.handle(release_id).fetch_history()
        lines = await asyncio.to_thread(adapters.outbox.read)
    finally:
        adapters.close()
    deliveries = sum(1 for line in lines if str(line["key"]).startswith(f"{release_id}:"))
    return _measure(history.events, partners, deliveries, wall)


def _measure(
    events: Sequence[HistoryEvent], partners: int, deliveries: int, wall: float
) -> FanoutBench:
    notify_ids = {
        e.event_id
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "notify_stakeholders"
    }
    request_bytes = max(
        (
            e.activity_task_scheduled_event_attributes.input.ByteSize()
            for e in events
            if e.event_id in notify_ids
        ),
        default=0,
    )
    started_at: dict[int, datetime] = {}
    result_bytes = 0
    fanout = 0.0
    for e in events:
        if e.HasField("activity_task_started_event_attributes"):
            scheduled = e.activity_task_started_event_attributes.scheduled_event_id
            started_at[scheduled] = e.event_time.ToDatetime()
        if e.HasField("activity_task_completed_event_attributes"):
            attrs = e.activity_task_completed_event_attributes
            if attrs.scheduled_event_id in notify_ids:
                result_bytes = max(result_bytes, attrs.result.ByteSize())
                begun = started_at.get(attrs.scheduled_event_id)
                if begun is not None:
                    took = (e.event_time.ToDatetime() - begun).total_seconds()
                    fanout = max(fanout, took)
    return FanoutBench(
        partners=partners,
        deliveries=deliveries,
        wall_seconds=round(wall, 3),
        fanout_seconds=round(fanout, 3),
        history_events=len(events),
        history_bytes=sum(e.ByteSize() for e in events),
        notify_activities=len(notify_ids),
        notify_request_bytes=request_bytes,
        notify_result_bytes=result_bytes,
    )

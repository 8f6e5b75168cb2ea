"""A real worker whose activities have the Temporal client, so access orders reach releases.

Orders find releases with a namespace-wide visibility query, so every test names its models
uniquely (:func:`unique`): an order must never reach another test's releases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from gatekeeper.adapters.registry import AccessRegistry, RegisteredPerson
from gatekeeper.cli import common, main
from gatekeeper.models import (
    AccessGrantStage,
    LaunchStage,
    ModelRef,
    NationalityStatus,
    NotificationPolicy,
    Policy,
    ReleaseSpec,
    ReleaseStatus,
)
from gatekeeper.orders import Orders
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import adapters_for, running_worker
from tests.workflows.conftest import Harness

#: Registry people: partner staff of each nationality, and members of the public.
PEOPLE = [
    RegisteredPerson(
        id="alice", partner_id="acme-labs", nationality=NationalityStatus.US_PERSON, location="us"
    ),
    RegisteredPerson(
        id="bruno",
        partner_id="acme-labs",
        nationality=NationalityStatus.FOREIGN_PERSON,
        location="us",
    ),
    RegisteredPerson(id="dana", partner_id="acme-labs", nationality=NationalityStatus.UNKNOWN),
    RegisteredPerson(
        id="chen", partner_id="brit-ai", nationality=NationalityStatus.FOREIGN_PERSON, location="gb"
    ),
    RegisteredPerson(id="pat", nationality=NationalityStatus.US_PERSON, location="us"),
    RegisteredPerson(id="fred", nationality=NationalityStatus.FOREIGN_PERSON, location="fr"),
]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def partner_policy(
    period: timedelta = timedelta(days=14), *, launch: bool = True, **access: object
) -> Policy:
    """Partner access (no quorum) then, optionally, launch: releases park in the minimum period
    cheaply. No notification routes, so nothing is sent but what the test looks at."""
    stages: list[object] = [
        AccessGrantStage(id="vetted_partner_access", minimum_period=period, **access)
    ]
    if launch:
        stages.append(LaunchStage(id="public_launch", surfaces=["api"]))
    return factories.policy(stages=stages, notifications=NotificationPolicy())


def release_spec(model: str, release_id: str | None = None) -> ReleaseSpec:
    return factories.spec(release_id or unique(model), model=ModelRef(name=model, version="1.0.0"))


@dataclass
class OrderHarness(Harness):
    """The workflow harness plus the orders API and the worker's registry."""

    orders: Orders

    @property
    def registry(self) -> AccessRegistry:
        return self.adapters.registry

    async def parked(self, release_id: str) -> ReleaseStatus:
        """Wait until the release sits in its minimum partner period."""
        return await self.until(
            release_id,
            lambda s: s.awaiting is not None and s.awaiting.what.startswith("the minimum partner"),
            within=30,
        )


@pytest_asyncio.fixture(loop_scope="session")
async def orders(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[OrderHarness]:
    settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
    adapters = adapters_for(task_queue, settings.data_dir)
    for person in PEOPLE:
        adapters.registry.add_person(person)
    # The worker's default policy names who may exempt from and lift orders (olga.ops).
    factories.install_policy(adapters.policies, factories.policy(), default=True)
    async with running_worker(env.client, task_queue, adapters, orders=True, threads=16):
        yield OrderHarness(
            env,
            Releases(env.client, task_queue, signer=signing.signer()),
            adapters,
            settings.data_dir,
            Orders(env.client, task_queue, signer=signing.signer()),
        )
    adapters.close()


class Cli:
    """The Gatekeeper CLI in-process (typer's runner, off the worker's event loop)."""

    def __init__(self, orders: OrderHarness) -> None:
        self.runner = CliRunner()
        self.env = {
            "TEMPORAL_ADDRESS": orders.env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": orders.env.client.namespace,
            "GATEKEEPER_TASK_QUEUE": orders.releases.task_queue,
            "GATEKEEPER_DATA_DIR": str(orders.data_dir),
            "GATEKEEPER_KEYS_DIR": str(signing.shared_keys_dir()),
        }

    async def __call__(self, *args: str) -> Result:
        # Each command runs its own event loop, so off this one (which hosts the worker).
        return await asyncio.to_thread(self.runner.invoke, main.app, list(args), env=self.env)


@pytest.fixture
def cli(orders: OrderHarness, monkeypatch: pytest.MonkeyPatch) -> Cli:
    if not main.app.registered_groups:
        main._register()
    monkeypatch.setattr(common.console, "width", 200)
    return Cli(orders)

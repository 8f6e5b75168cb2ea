"""Side effects that fail for a while: a webhook receiver answering 503 and an access registry
whose database is locked. Temporal retries the activities; when the far side recovers the release
completes, every webhook is accepted once and every partner is granted once."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest_asyncio
from aiohttp import web
from temporalio.testing import WorkflowEnvironment

from activities import channels_configured, open_adapters
from gatekeeper.adapters import DatabaseAuditStore, DeliveryStore
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, granted_partners
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    verify_signature,
    webhook_client,
    webhook_factory,
)
from gatekeeper.channels import SendJournal
from gatekeeper.channels.webhook import WebhookSettings
from gatekeeper.codec_server import serve
from gatekeeper.config import EgressSettings, WorkerConfig
from gatekeeper.egress import EgressRules
from gatekeeper.models import NotificationPolicy, NotificationRoute, Recipients
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.faults.pipeline import (
    approve_gate,
    awaiting_gate,
    collect,
    fast_policy,
    run_to_launch,
    seed_partners,
    status_until,
)
from tests.helpers import chain_of, eventually, running_worker

SECRET = "hook-secret"
SECRET_ENV = "GK_TEST_HOOK_SECRET"
#: Short, so a locked registry fails an attempt quickly instead of waiting 30 s for the lock.
REGISTRY_BUSY_TIMEOUT = 0.2


@dataclass
class Receiver:
    """A webhook endpoint that refuses the first ``refuse`` requests with 503, then accepts."""

    refuse: int
    refused: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    forged: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers[IDEMPOTENCY_HEADER]
        if not verify_signature(SECRET.encode(), request.headers[SIGNATURE_HEADER], body):
            self.forged += 1
            return web.Response(status=401)
        if len(self.refused) < self.refuse:
            self.refused.append(key)
            return web.Response(status=503, text="maintenance")
        self.accepted.append(key)
        return web.json_response({"ok": True})


@dataclass
class Stage:
    releases: Releases
    receiver: Receiver
    hook_url: str
    settings: Settings


@pytest_asyncio.fixture(loop_scope="session")
async def stage(env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> AsyncIterator[Stage]:
    receiver = Receiver(refuse=4)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data", env={SECRET_ENV: SECRET})
    seed_partners(settings.effective_registry_url)
    adapters = open_adapters(settings)
    # The worker's database waits only briefly for a lock, as a remote database would time out
    # (the registry, the send journal and the audit store share it).
    url = settings.effective_registry_url
    shared, adapters.registry = (
        adapters.registry,
        AccessRegistry(url, busy_timeout=REGISTRY_BUSY_TIMEOUT),
    )
    opened = [adapters.audit_store, adapters.deliveries]
    adapters.audit_store = DatabaseAuditStore(url, busy_timeout=REGISTRY_BUSY_TIMEOUT)
    adapters.deliveries = DeliveryStore(url, busy_timeout=REGISTRY_BUSY_TIMEOUT)
    for store in opened:
        store.close()
    # The production notifier's channels, with a webhook HTTP client this fixture closes; the
    # worker's configuration defines channel "hook" as the local receiver (loopback allowed).
    http = webhook_client(EgressRules.allowing(["127.0.0.1"]))
    journal = SendJournal(adapters.deliveries, adapters.outbox)
    channels = ChannelRegistry.embedded(journal)
    channels.register("webhook", webhook_factory(journal, settings.env, client=http))
    async with serve(app, "127.0.0.1", 0) as url:
        hook = WebhookSettings(type="webhook", url=f"{url}/hook", secret_env=SECRET_ENV)
        adapters.notifier = Notifier(
            channels, configured={"hook": hook}, cohorts=granted_partners(shared.list_grants)
        )
        configured = WorkerConfig(
            channels={"hook": hook}, egress=EgressSettings(allow_hosts=["127.0.0.1"])
        )
        adapters.policy_checks[:] = [channels_configured(configured)]
        async with running_worker(env.client, task_queue, adapters):
            yield Stage(
                Releases(env.client, task_queue, signer=signing.signer()),
                receiver,
                f"{url}/hook",
                settings,
            )
    adapters.close()
    shared.close()
    await asyncio.to_thread(http.close)


def policy_with_webhook() -> object:
    base = fast_policy(window=1.0, partner_period=0.5)
    routes = [
        *base.notifications.routes,
        NotificationRoute(
            events=["*"], to=Recipients(roles=["operator", "security"]), channels=["hook"]
        ),
    ]
    return fast_policy(
        window=1.0,
        partner_period=0.5,
        notifications=NotificationPolicy(routes=routes),
    )


#: Activities that need the worker's database (the registry, the send journal, the audit store).
NEEDS_THE_DATABASE = {"grant_partner_access", "record_audit_events", "notify_stakeholders"}


async def retried(releases: Releases, release_id: str, *, attempts: int) -> bool:
    """Whether an activity needing the database has reached its ``attempts``-th attempt (so it
    has failed)."""
    description = await releases.handle(release_id).describe()
    return any(
        activity.activity_type.name in NEEDS_THE_DATABASE and activity.attempt >= attempts
        for activity in description.raw_description.pending_activities
    )


class TestOutages:
    """The webhook is down for its first requests and the worker's database (registry, send
    journal, audit store) is locked when the release moves on to grant access; both recover and
    nothing is done twice."""

    async def test_release_survives_webhook_and_registry_outages(self, stage: Stage) -> None:
        release_id = f"outage-{uuid.uuid4().hex[:8]}"
        policy = policy_with_webhook()
        await factories.start_release(
            stage.releases,
            stage.settings.effective_registry_url,
            factories.spec(release_id),
            policy,  # type: ignore[arg-type]
        )
        await status_until(stage.releases, release_id, awaiting_gate("internal_review"))

        # Lock the registry before the release needs it: every grant attempt finds it busy.
        registry_db = stage.settings.data_dir / "registry.db"
        lock = sqlite3.connect(registry_db, isolation_level=None, timeout=5)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            await approve_gate(stage.releases, release_id, "internal_review")
            await eventually(
                lambda: retried(stage.releases, release_id, attempts=3),
                what="the third attempt at an activity needing the database",
                within=10,
            )
            status = await stage.releases.status(release_id)
            assert not status.grants, "nothing can be granted while the database is down"
        finally:
            lock.execute("ROLLBACK")
            lock.close()

        outcome = await run_to_launch(stage.releases, release_id, within=90)
        evidence = collect(
            stage.settings.data_dir, stage.settings.effective_registry_url, release_id
        )
        evidence.assert_exactly_once(outcome)

        receiver = stage.receiver
        assert receiver.forged == 0
        assert len(receiver.refused) == receiver.refuse, "the webhook outage must have been hit"
        twice = [k for k, n in Counter(receiver.accepted).items() if n > 1]
        assert not twice, f"webhook deliveries accepted twice: {twice}"
        assert set(receiver.refused) <= set(receiver.accepted), "refused deliveries must be retried"
        hooked = {k for k in receiver.accepted if k.startswith(f"{release_id}:")}
        assert any(":launched:" in k for k in hooked)
        chain = chain_of(outcome, stage.settings.effective_registry_url)
        failed = [e for e in chain if e.action == "notification_failed"]
        assert not failed, "a short outage must not exhaust the notification retries"

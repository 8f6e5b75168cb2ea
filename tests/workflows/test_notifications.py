"""Notifications on a real worker: cohort fan-out at scale, history size, retries by Temporal."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from bench.notify import bench_fanout
from gatekeeper.channels.webhook import WebhookSettings
from gatekeeper.config import EgressSettings, WorkerConfig
from gatekeeper.errors import StartRefused
from gatekeeper.models import NotificationPolicy, NotificationRoute, Policy, Recipients
from gatekeeper.models.audit import AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.adapters.test_webhook import IDEMPOTENCY_HEADER, REDELIVERY_HEADER, WebhookReceiver
from tests.helpers import activity_attempts, eventually, running_worker
from tests.workflows.conftest import Harness

SECRET_ENV = "GATEKEEPER_TEST_HOOK_SECRET"


class TestCohortFanOut:
    """Telling a cohort of 5,000 partners is one activity whose request names the cohort and whose
    result is counts: every partner gets the message once, and history stays a few kilobytes."""

    async def test_five_thousand_partners(self, env: WorkflowEnvironment, tmp_path: Path) -> None:
        result = await bench_fanout(env.client, tmp_path / "data", partners=5000)

        assert result.deliveries == 5001, "every partner and the submitter, once each"
        assert result.notify_activities == 1
        assert result.notify_request_bytes < 4_000
        assert result.notify_result_bytes < 1_000
        # Independent of the cohort's size (about 60, with the release's registry reads of the
        # orders covering its model before granting and before launching).
        assert result.history_events < 70
        assert result.history_bytes < 64_000
        lines = [
            json.loads(line)
            for line in (tmp_path / "data" / "outbox.jsonl").read_text().splitlines()
        ]
        partners = Counter(
            line["recipient"]["id"]
            for line in lines
            if line["recipient"]["id"].startswith("partner:")
        )
        assert len(partners) == 5000 and set(partners.values()) == {1}
        notification = lines[0]["notification"]["idempotency_key"]
        assert notification.endswith(":release_started:0")
        assert {line["key"] for line in lines} == {
            f"{notification}:{line['recipient']['id']}:outbox" for line in lines
        }, "one key per (release, event, partner, channel)"


class TestReleaseHistory:
    """A whole release stays in the low hundreds of history events, far from the 10,240-event
    warning and 51,200-event limit, so it never needs continue-as-new."""

    async def test_a_full_release_is_a_few_hundred_events(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.launch(rid)

        history = await harness.handle(rid).fetch_history()
        size = sum(e.ByteSize() for e in history.events)

        assert len(history.events) < 400, len(history.events)
        assert size < 256_000, size


@contextlib.asynccontextmanager
async def _hooked_worker(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, *, checks: bool = True
) -> AsyncIterator[tuple[Releases, WebhookReceiver]]:
    receiver = WebhookReceiver()
    receiver.start()
    config = WorkerConfig(
        channels={"hook": WebhookSettings(type="webhook", url=receiver.url, secret_env=SECRET_ENV)},
        egress=EgressSettings(allow_hosts=["127.0.0.1"]),
    )
    settings = Settings(
        task_queue=task_queue, data_dir=tmp_path / "data", env={SECRET_ENV: "k"}, config=config
    )
    adapters = open_adapters(settings)
    if not checks:
        adapters.policy_checks.clear()
    # Releases here name no policy: they run under the store's default, this one.
    factories.install_policy(adapters.policies, hooked_policy(), default=True)
    try:
        async with running_worker(env, task_queue, adapters):
            yield Releases(env.client, task_queue, signer=signing.signer()), receiver
    finally:
        adapters.close()
        receiver.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def hooked(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[tuple[Releases, WebhookReceiver]]:
    """A worker whose configuration defines channel ``hook`` as a webhook to a local receiver
    (loopback allowed), with the secret in its environment."""
    async with _hooked_worker(env, task_queue, tmp_path) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def unchecked(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[tuple[Releases, WebhookReceiver]]:
    """Like ``hooked``, but the worker skips its own channel check at start: the situation of a
    release that started before its worker's configuration lost a channel."""
    async with _hooked_worker(env, task_queue, tmp_path, checks=False) as running:
        yield running


def hooked_policy() -> Policy:
    return factories.policy(
        notifications=NotificationPolicy(
            routes=[
                NotificationRoute(
                    events=["release_started"], to=Recipients(concerned=True), channels=["hook"]
                )
            ],
        )
    )


async def audit_until(releases: Releases, rid: str, action: str) -> AuditEvent:
    async def found() -> list[AuditEvent]:
        return [e for e in await releases.audit(rid) if e.action == action]

    return (await eventually(found, what=f"a {action} audit event of {rid}"))[0]


class TestRetriesThroughTemporal:
    """A receiver that answers 503 is retried by Temporal's retry policy until it accepts, with the
    same Idempotency-Key; one that answers 400 is not retried, and the audit trail says so."""

    async def test_a_503_is_retried_with_the_same_key(
        self, hooked: tuple[Releases, WebhookReceiver]
    ) -> None:
        releases, receiver = hooked
        receiver.answers = [503]
        rid = f"hook-{uuid.uuid4().hex[:8]}"
        await releases.start(factories.spec(rid))  # the default: hooked_policy()

        await eventually(  # the retry comes about a second after the 503
            lambda: len(receiver.received),
            lambda count: count >= 2,
            what="the 503 and its retry at the receiver",
        )

        first, second = receiver.received[:2]
        assert first.key == second.key == f"{rid}:release_started:0:{factories.SUBMITTER}:hook"
        assert (first.headers.get(REDELIVERY_HEADER), second.headers[REDELIVERY_HEADER]) == (
            None,
            "1",
        )
        assert len(receiver.deduplicated()) == 1
        assert not [e for e in await releases.audit(rid) if e.action == "notification_failed"]

    async def test_a_400_is_final_and_audited(
        self, hooked: tuple[Releases, WebhookReceiver]
    ) -> None:
        releases, receiver = hooked
        receiver.answers = [400]
        rid = f"hook-{uuid.uuid4().hex[:8]}"
        await releases.start(factories.spec(rid))  # the default: hooked_policy()

        failed = await audit_until(releases, rid, "notification_failed")
        # Its one attempt was final: Temporal runs no notification of the release again.
        assert set(await activity_attempts(releases.handle(rid), "notify_stakeholders")) == {1}

        assert failed.details["key"] == f"{rid}:release_started:0"
        assert "HTTP 400" in failed.details["error"]
        assert [r.headers[IDEMPOTENCY_HEADER] for r in receiver.received] == [
            f"{rid}:release_started:0:{factories.SUBMITTER}:hook"
        ]


class TestUnconfiguredChannel:
    """A policy whose routes name a channel this worker does not define is refused when a release
    starts (the worker checks it against its own configuration). Should the configuration lose a
    channel while a release runs, nothing is sent on it and nothing anywhere in its place; the
    notification is audited as failed once, naming the channel, and the other channels of the
    route still deliver."""

    @staticmethod
    def pager_policy() -> Policy:
        return factories.policy(
            notifications=NotificationPolicy(
                routes=[
                    NotificationRoute(
                        events=["release_started"],
                        to=Recipients(concerned=True),
                        channels=["pager", "outbox"],
                    )
                ]
            )
        )

    async def test_a_release_under_it_is_refused_at_start(
        self, hooked: tuple[Releases, WebhookReceiver], tmp_path: Path
    ) -> None:
        releases, receiver = hooked
        rid = f"pager-{uuid.uuid4().hex[:8]}"
        store = Settings(data_dir=tmp_path / "data").effective_registry_url  # the worker's
        with pytest.raises(StartRefused) as refused:
            await factories.start_release(releases, store, factories.spec(rid), self.pager_policy())
        assert refused.value.rule == "policy_not_runnable"
        assert "channel 'pager' is not configured on this worker" in str(refused.value)
        assert "\n" not in str(refused.value)
        assert receiver.received == []
        assert (
            not (tmp_path / "data" / "outbox.jsonl").exists()
            or rid not in (tmp_path / "data" / "outbox.jsonl").read_text()
        )

    async def test_nothing_is_sent_in_its_place_and_it_is_audited_once(
        self, unchecked: tuple[Releases, WebhookReceiver], tmp_path: Path
    ) -> None:
        releases, receiver = unchecked
        rid = f"pager-{uuid.uuid4().hex[:8]}"
        policy = self.pager_policy()
        store = Settings(data_dir=tmp_path / "data").effective_registry_url  # the worker's
        await factories.start_release(releases, store, factories.spec(rid), policy)

        failed = await audit_until(releases, rid, "notification_failed")
        # Its one attempt was final: Temporal runs no notification of the release again.
        assert set(await activity_attempts(releases.handle(rid), "notify_stakeholders")) == {1}

        audits = [e for e in await releases.audit(rid) if e.action == "notification_failed"]
        assert audits == [failed]
        assert failed.details["key"] == f"{rid}:release_started:0"
        assert failed.details["unconfigured_channels"] == ["pager"]
        outbox = [
            json.loads(line)
            for line in (tmp_path / "data" / "outbox.jsonl").read_text().splitlines()
        ]
        mine = [line for line in outbox if line["notification"]["release_id"] == rid]
        assert [(line["channel"], line["recipient"]["id"]) for line in mine] == [
            ("outbox", factories.SUBMITTER)
        ]
        assert receiver.received == []

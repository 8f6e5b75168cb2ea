"""What a release costs in Temporal (issue 16): one notify activity per workflow task, one
search-attribute upsert per workflow task with only what changed, and one patch marker."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from activities import activities_from
from gatekeeper import search_attributes as sa
from gatekeeper.failures import CONVERTER
from gatekeeper.identity.heads import AnchorRequest, HeadSignature
from gatekeeper.models import DecisionKind, NotificationPolicy, NotificationRoute, Recipients
from gatekeeper.models.io import NotifyBatch
from gatekeeper.models.status import ReleaseHead, ReleaseStatus
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signed_requests import release_binding
from tests import factories, signing
from tests.adapters.test_webhook import WebhookReceiver
from tests.helpers import (
    activity_attempts,
    activity_name,
    adapters_for,
    running_worker,
    status_until,
)
from tests.workflows.conftest import Harness
from tests.workflows.test_notifications import _hooked_worker
from workflows.release import COST_PATCH

CHANGE_VERSION = "TemporalChangeVersion"
ENTRY_FIELDS = {"seq", "at", "actor", "action", "stage", "details"}


@dataclass
class Task:
    """What one workflow task's completion commanded, by kind."""

    notify: list[NotifyBatch] = field(default_factory=list)
    upserts: list[dict[str, Any]] = field(default_factory=list)
    markers: int = 0


def tasks_of(events: list[HistoryEvent]) -> list[Task]:
    """The commands of each completed workflow task (the events after its completion, up to the
    next task's start)."""
    tasks: list[Task] = []
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            tasks.append(Task())
        elif not tasks:
            continue
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attributes = event.activity_task_scheduled_event_attributes
            if attributes.activity_type.name == "notify_stakeholders":
                [payload] = attributes.input.payloads
                tasks[-1].notify.append(NotifyBatch.model_validate_json(payload.data))
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            tasks[-1].upserts.append(
                {
                    name: CONVERTER.payload_converter.from_payload(value)
                    for name, value in fields.indexed_fields.items()
                }
            )
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            tasks[-1].markers += 1
    return tasks


async def launched(harness: Harness) -> tuple[str, list[HistoryEvent]]:
    """A release driven from its start to its launch, and its history."""
    status = await harness.start()
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.launch(rid)
    history = await harness.handle(rid).fetch_history()
    return rid, list(history.events)


class TestOneNotifyActivityPerTask:
    """Every notice a workflow task raises goes out in one ``notify_stakeholders`` activity, each
    notification under the key it always had: the outbox holds each delivery once, keyed by
    notification, recipient and channel, whichever batch carried it."""

    async def test_a_release_notifies_once_per_task(self, harness: Harness) -> None:
        rid, events = await launched(harness)
        tasks = tasks_of(events)

        per_task = [len(t.notify) for t in tasks]
        assert max(per_task) == 1, per_task
        batches = [b for t in tasks for b in t.notify]
        # A gate's last approval records the decision, passes the gate and opens the next one:
        # those notices travel together.
        assert max(len(b.requests) for b in batches) >= 2
        keys = [r.notification.idempotency_key for b in batches for r in b.requests]
        assert len(keys) == len(set(keys)), "no notification is sent twice"
        assert all(key.startswith(f"{rid}:") for key in keys)

        lines = [line for line in harness.outbox_lines() if line["key"].startswith(f"{rid}:")]
        delivered = Counter(line["key"] for line in lines)
        assert set(delivered.values()) == {1}
        assert {line["notification"]["idempotency_key"] for line in lines} == set(keys)
        assert {line["key"] for line in lines} == {
            f"{line['notification']['idempotency_key']}:{line['recipient']['id']}:"
            f"{line['recipient']['channel']}"
            for line in lines
        }
        assert not [
            e for e in await harness.releases.audit(rid) if e.action == "notification_failed"
        ]


class TestUpsertsOnlyWhatChanged:
    """The release upserts its search attributes at most once per workflow task, each time only
    the values that differ from what it upserted before (or the start set), and what the
    namespace's visibility shows at the end is the release's final state."""

    async def test_one_upsert_per_task_of_changed_values(self, harness: Harness) -> None:
        rid, events = await launched(harness)
        tasks = tasks_of(events)

        published: dict[str, Any] = {
            sa.RELEASE_STATE.name: "active",  # what `release start` sets
            sa.AWAITING_ROLES.name: [],
        }
        for number, task in enumerate(tasks):
            kept = [u for u in task.upserts if CHANGE_VERSION not in u]
            assert len(kept) <= 1, (number, kept)
            for upsert in kept:
                same = {k: v for k, v in upsert.items() if _same(published.get(k), v)}
                assert not same, f"task {number} upserted unchanged values {same}"
                published.update(upsert)

        description = await harness.handle(rid).describe()
        shown = description.typed_search_attributes
        assert shown.get(sa.RELEASE_STATE) == "launched"
        assert shown.get(sa.RELEASE_OUTCOME) == "launched"
        assert shown.get(sa.RELEASE_STAGE) == "public_launch"
        assert not shown.get(sa.AWAITING_ROLES)
        assert shown.get(sa.AWAITING_SINCE) is None


def _same(before: Any, after: Any) -> bool:
    """Whether an upsert of ``after`` changes nothing over ``before`` (an empty list or an unset
    value is no value)."""
    return (before or None) == (after or None)


class TestOneMarker:
    """A release started today records one patch marker (and one ``TemporalChangeVersion``
    upsert) for all the patches it runs under, not one per patch."""

    async def test_the_start_records_one_marker(self, harness: Harness) -> None:
        _, events = await launched(harness)
        tasks = tasks_of(events)

        assert sum(t.markers for t in tasks) == 1
        versions = [u[CHANGE_VERSION] for t in tasks for u in t.upserts if CHANGE_VERSION in u]
        assert versions == [[COST_PATCH]]
        markers = [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
        details = markers[0].marker_recorded_event_attributes.details
        assert COST_PATCH in json.dumps(
            {k: [p.data.decode() for p in v.payloads] for k, v in details.items()}
        )


class TestPinnedHistory:
    """The saved history of a release under the patch (tests/histories/cost_patch.json, which
    tests/test_replay.py replays) keeps what it is kept for: the one marker, and notices
    batched."""

    def test_it_was_recorded_under_the_patch(self) -> None:
        path = Path(__file__).parents[1] / "histories" / "cost_patch.json"
        history = WorkflowHistory.from_json("cost-patch", path.read_text())
        tasks = tasks_of(list(history.events))

        versions = [u[CHANGE_VERSION] for t in tasks for u in t.upserts if CHANGE_VERSION in u]
        assert versions == [[COST_PATCH]]
        assert max(len(b.requests) for t in tasks for b in t.notify) >= 2


class TestHeadQuery:
    """``get_head`` answers where the release is in a few hundred bytes: the same status version,
    state, stage, awaited roles and signing binding as the whole status (``get_status``), which
    is many times larger; what the CLI signs over it is what the worker checks."""

    async def test_the_head_matches_the_status(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")  # signed over the head

        handle = harness.handle(rid)
        raw_head = await handle.query("get_head", result_type=dict)
        raw_status = await handle.query("get_status", result_type=dict)
        head = ReleaseHead.model_validate(raw_head)
        full = ReleaseStatus.model_validate(raw_status)

        assert head == ReleaseHead.of(full)
        assert head.status_version == full.status_version > 0
        assert (head.stage, head.awaiting_roles) == ("internal_review", ["security", "legal"])
        assert release_binding(head) == release_binding(full)
        assert len(json.dumps(raw_head)) < 1_000 < 4 * 1_000 < len(json.dumps(raw_status))
        assert await harness.releases.head(rid) == head


@pytest_asyncio.fixture(loop_scope="session")
async def unchecked(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[tuple[Releases, WebhookReceiver]]:
    """A worker that skips its own channel check at start (the situation of a release that
    started before its worker's configuration lost a channel)."""
    async with _hooked_worker(env, task_queue, tmp_path, checks=False) as running:
        yield running


class TestAFailedNoticeInABatch:
    """A notice of a batch that cannot be delivered is audited on its own, once, naming its key;
    the other notices of the same activity are delivered, and the activity is not retried."""

    async def test_only_the_failed_notice_is_audited(
        self, unchecked: tuple[Releases, WebhookReceiver], tmp_path: Path
    ) -> None:
        releases, receiver = unchecked
        rid = f"batch-{uuid.uuid4().hex[:8]}"
        policy = factories.policy(
            notifications=NotificationPolicy(
                routes=[
                    NotificationRoute(
                        events=["decision_recorded"],
                        to=Recipients(concerned=True),
                        channels=["pager"],
                    ),
                    NotificationRoute(
                        events=["gate_passed"], to=Recipients(concerned=True), channels=["outbox"]
                    ),
                ]
            )
        )
        store = Settings(data_dir=tmp_path / "data").effective_registry_url  # the worker's
        await factories.start_release(releases, store, factories.spec(rid), policy)
        await status_until(releases, rid, lambda s: s.stage == "internal_review" and s.awaiting)
        for decider, role in factories.INTERNAL_REVIEW:
            await releases.decide(rid, DecisionKind.APPROVE, factories.decision(decider, role))
        await status_until(releases, rid, lambda s: s.stage == "government_testing_window")
        assert set(await activity_attempts(releases.handle(rid), "notify_stakeholders")) == {1}

        history = await releases.handle(rid).fetch_history()
        batches = [b for t in tasks_of(list(history.events)) for b in t.notify]
        together = [b for b in batches if len(b.requests) > 1]
        assert [[r.notification.event.value for r in b.requests] for b in together] == [
            ["decision_recorded", "gate_passed"]
        ]
        recorded = {
            r.notification.idempotency_key
            for b in batches
            for r in b.requests
            if r.notification.event.value == "decision_recorded"
        }
        assert len(recorded) == len(factories.INTERNAL_REVIEW)

        failed = [e for e in await releases.audit(rid) if e.action == "notification_failed"]
        assert sorted(e.details["key"] for e in failed) == sorted(recorded)
        assert {tuple(e.details["unconfigured_channels"]) for e in failed} == {("pager",)}
        outbox = [
            json.loads(line)
            for line in (tmp_path / "data" / "outbox.jsonl").read_text().splitlines()
        ]
        mine = [line for line in outbox if line["notification"]["release_id"] == rid]
        assert {line["notification"]["event"] for line in mine} == {"gate_passed"}
        assert len({line["key"] for line in mine}) == len(mine) > 0
        assert receiver.received == []


class _SlowAnchors:
    """``anchor_audit_head`` that takes its time, so the next stage's head is signed while the
    previous one is still being signed (what a busy worker does now and then)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    @activity.defn(name="anchor_audit_head")
    def anchor_audit_head(self, request: AnchorRequest) -> HeadSignature:
        time.sleep(0.4)
        result: HeadSignature = self._real(request)
        return result


def audit_writes(events: list[HistoryEvent]) -> list[tuple[int, int, list[int]]]:
    """Each audit write of a history: when it was scheduled and completed (event ids) and the
    seqs of the audit events it carries."""
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id: e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    }
    writes = []
    for event in events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name in ("anchor_audit_head", "record_audit_events"):
            [payload] = attributes.input.payloads
            data = json.loads(payload.data)
            # Entries: the events without release id, links and hashes (the activity seals them).
            assert data["events"] == [], "a release under COST_PATCH sends entries"
            assert all(set(e) == ENTRY_FIELDS for e in data["entries"]), data["entries"]
            seqs = [e["seq"] for e in data["entries"]]
            writes.append((event.event_id, completed[event.event_id], seqs))
    return writes


class TestEachAuditEventOnce:
    """Each audit event crosses into the release's history once: a head signed while the one
    before is still being signed carries only the events after it (its activity waits for the
    earlier one to land), and the result names the chain without carrying it; the audit store
    holds the whole chain, its last head signed."""

    async def test_heads_signed_back_to_back(
        self, env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        task_queue = f"tq-once-{uuid.uuid4().hex[:8]}"
        data_dir = tmp_path / "data"
        adapters = adapters_for(task_queue, data_dir)
        factories.install_policy(adapters.policies, factories.policy(), default=True)
        real = activities_from(adapters)
        slow = _SlowAnchors(next(a for a in real if activity_name(a) == "anchor_audit_head"))
        harness = Harness(
            env, Releases(env.client, task_queue, signer=signing.signer()), adapters, data_dir
        )
        try:
            async with running_worker(
                env.client, task_queue, adapters, replacing=[slow.anchor_audit_head]
            ):
                rid = (await harness.start()).release_id
                await harness.at_stage(rid, "internal_review")
                outcome = await harness.launch(rid)
                history = await harness.handle(rid).fetch_history()
            chain = harness.chain(outcome)
            heads = [a.head for a in adapters.anchors.anchors(rid)]
        finally:
            adapters.close()
        writes = audit_writes(list(history.events))
        sent = [seq for _, _, seqs in writes for seq in seqs]

        overlapping = [
            (later, earlier)
            for earlier in writes
            for later in writes
            if earlier[0] < later[0] < earlier[1]
        ]
        assert overlapping, f"no head was signed while another was: {writes}"
        assert len(sent) == len(set(sent)), f"an event was sent twice: {writes}"
        assert sorted(sent) == list(range(len(chain))) == [e.seq for e in chain]
        assert not outcome.audit and outcome.status.audit_length == len(chain)
        assert (heads[-1].seq, heads[-1].hash) == (len(chain) - 1, chain[-1].hash)

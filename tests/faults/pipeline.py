"""Driving a release through the whole pipeline on its own clock, and checking what it left.

Fault tests cannot use the in-process ``harness``: their workers are separate processes or come
and go. Everything here talks to Temporal through :class:`Releases` and reads the adapters'
files directly, as an auditor would.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from gatekeeper.adapters import DatabaseAuditStore, DeliveryStore
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.audit import verify_chain
from gatekeeper.dossier.collect import completed_chain
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, Policy, ReleaseOutcome, ReleaseState, ReleaseStatus
from gatekeeper.models.audit import AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, helpers
from tests.helpers import PARTNERS

#: Approvers per gate; the partner gate's security reviewer differs from internal review's.
APPROVERS = {
    "internal_review": factories.INTERNAL_REVIEW,
    "vetted_partner_access": [("sec.two", "security")],
    "launch_approval": [("eve.exec", "executive")],
}
EXPECTED_PARTNERS = {"acme-labs", "brit-ai", "invited-co"}


def fast_policy(window: float = 2.0, partner_period: float = 1.0, **overrides: object) -> Policy:
    """The six-stage policy with a government window and partner period of seconds."""
    return factories.policy(
        window=timedelta(seconds=window),
        partner_period=timedelta(seconds=partner_period),
        **overrides,
    )


def seed_partners(registry_url: str) -> None:
    with AccessRegistry(registry_url) as registry:
        for partner in PARTNERS:
            registry.add_partner(partner)


async def status_until(
    releases: Releases,
    release_id: str,
    predicate: Callable[[ReleaseStatus], object],
    *,
    within: float = 30.0,
) -> ReleaseStatus:
    """Poll the release until ``predicate`` holds; a server or worker that is briefly away is
    retried, not fatal."""
    return await helpers.status_until(releases, release_id, predicate, within=within, outages=True)


def awaiting_gate(stage: str) -> Callable[[ReleaseStatus], bool]:
    def check(status: ReleaseStatus) -> bool:
        return bool(
            status.stage == stage
            and status.awaiting is not None
            and status.awaiting.roles
            and stage in status.gates
            and status.gates[stage].closed_at is None
        )

    return check


async def approve_gate(releases: Releases, release_id: str, stage: str) -> None:
    """Every approval the gate needs; an approval already recorded (a retry) is fine."""
    for decider, role in APPROVERS[stage]:
        try:
            await releases.decide(
                release_id, DecisionKind.APPROVE, factories.decision(decider, role)
            )
        except DecisionRefused as refused:
            if refused.rule != "already_decided":
                raise


async def run_to_launch(
    releases: Releases, release_id: str, *, within: float = 60.0
) -> ReleaseOutcome:
    """Approve each gate whenever the release waits at one, until it ends; return its outcome.

    Driven by what the release says it awaits, so it can take over a release at any point (after
    a crash or a restart) and tolerates the server or worker being briefly away.
    """
    handle = releases.handle(release_id)

    async def step() -> ReleaseOutcome | str:
        """The outcome once the release ended; else approve a gate it waits at, and say where."""
        description = await asyncio.wait_for(handle.describe(), 5)
        if description.status != WorkflowExecutionStatus.RUNNING:
            outcome: ReleaseOutcome = await handle.result()
            return outcome
        status = await asyncio.wait_for(releases.status(release_id), 5)
        if status.stage in APPROVERS and awaiting_gate(status.stage)(status):
            await approve_gate(releases, release_id, status.stage)
        return helpers.describe_status(status)

    ended = await helpers.eventually(
        step,
        lambda found: isinstance(found, ReleaseOutcome),
        what=f"{release_id} to finish",
        within=within,
        every=0.1,
        tolerate=helpers.OUTAGE,
        show=str,
    )
    assert isinstance(ended, ReleaseOutcome)
    return ended


@dataclass
class Timer:
    """A timer of a release's history: when it was started and (if it did) fired, server time."""

    summary: str
    started_at: datetime
    fired_at: datetime | None


def timers(history: WorkflowHistory, summary: str) -> list[Timer]:
    """Every timer whose summary contains ``summary``, in the order they were started."""
    found: dict[str, Timer] = {}
    for event in history.events:
        at = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            said = event.user_metadata.summary.data.decode(errors="replace")
            if summary in said:
                found[event.timer_started_event_attributes.timer_id] = Timer(said, at, None)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            timer = found.get(event.timer_fired_event_attributes.timer_id)
            if timer is not None:
                timer.fired_at = at
    return list(found.values())


def task_workers(history: WorkflowHistory) -> list[tuple[int, datetime, int]]:
    """Each completed workflow task: its event id, when, and the pid of the worker that
    completed it (a worker's identity is ``pid@host``)."""
    return [
        (e.event_id, e.event_time.ToDatetime(tzinfo=UTC), int(identity.split("@", 1)[0]))
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        and (identity := e.workflow_task_completed_event_attributes.identity)
    ]


@dataclass
class Evidence:
    """What a finished release left in the adapters, checked for exactly-once effects."""

    outbox_keys: list[str]
    grant_keys: list[tuple[str, str]]
    stored_audit_ok: bool
    stored_audit_reason: str
    #: The release's chain as the audit store holds it.
    stored_audit: list[AuditEvent]

    def assert_exactly_once(self, outcome: ReleaseOutcome) -> None:
        assert outcome.status.state is ReleaseState.LAUNCHED
        duplicates = [k for k, n in Counter(self.outbox_keys).items() if n > 1]
        assert not duplicates, f"notifications delivered twice: {duplicates}"
        assert self.outbox_keys, "no notification was delivered"
        release_id = outcome.status.release_id
        sent = {k.split(":")[1] for k in self.outbox_keys}
        assert {"release_started", "launched"} <= sent, sent
        assert all(k.startswith(f"{release_id}:") for k in self.outbox_keys)
        grant_dupes = [k for k, n in Counter(self.grant_keys).items() if n > 1]
        assert not grant_dupes, f"partner granted twice: {grant_dupes}"
        assert {p for p, _ in self.grant_keys} == EXPECTED_PARTNERS
        assert {(g.partner_id, g.surface.value) for g in outcome.status.grants} == set(
            self.grant_keys
        ), "the workflow's grants and the registry's differ"
        assert self.stored_audit_ok, self.stored_audit_reason
        # The result names the chain (length, head); the store's must be exactly that one.
        assert not outcome.audit, "a release's result carries its audit chain again"
        chain = completed_chain(outcome, self.stored_audit)
        check = verify_chain(chain)
        assert check.ok, check.reason


def collect(data_dir: Path, registry_url: str, release_id: str) -> Evidence:
    """Read the deliveries, the registry and the audit store the release's workers wrote (the
    database), and the outbox file's lines: a mirror, so every line's key is a recorded
    delivery, and no key has two lines."""
    outbox = data_dir / "outbox.jsonl"
    lines = [json.loads(x) for x in outbox.read_text().splitlines() if x.strip()]
    mirrored = [line["key"] for line in lines if line["key"].startswith(f"{release_id}:")]
    with DeliveryStore(registry_url) as deliveries:
        keys = [str(line["key"]) for line in deliveries.lines(release_id)]
    assert set(mirrored) <= set(keys), "the outbox file lists a delivery the journal lacks"
    # A key the file lists twice counts as delivered twice.
    keys += list((Counter(mirrored) - Counter(set(mirrored))).elements())
    with AccessRegistry(registry_url) as registry:
        grants = [(g.partner_id, g.surface.value) for g in registry.list_grants(release_id)]
    with DatabaseAuditStore(registry_url) as audit:
        stored = audit.read(release_id)
    check = verify_chain(stored)
    return Evidence(keys, grants, check.ok, check.reason or "", stored)


# --- worker processes ----------------------------------------------------------------------


def worker_env(target: str, task_queue: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a worker process: Temporal by envconfig, Gatekeeper by its settings.

    The worker's key (in ``data_dir``) is registered in its identity registry by an admin whose
    key is in ``data_dir/keys``, as an operator does before starting a cluster worker.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "GATEKEEPER_"))}
    env.update(
        TEMPORAL_ADDRESS=target,
        TEMPORAL_NAMESPACE="default",
        GATEKEEPER_TASK_QUEUE=task_queue,
        GATEKEEPER_DATA_DIR=str(data_dir),
        GATEKEEPER_KEYS_DIR=str(data_dir / "keys"),
        GATEKEEPER_LOG_FORMAT="json",
        GATEKEEPER_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    register_worker_key(Settings.from_env(env))
    return env


def register_worker_key(settings: Settings) -> None:
    """Create the worker's key for ``settings`` and register it (a root and admin made if needed),
    and every test person's signing key (``tests.signing``), so the tests' requests count."""
    from gatekeeper.identity.registry import IdentityRegistry
    from gatekeeper.identity.worker_key import ensure_worker_key
    from tests import signing
    from tests.identity_fixtures import admin_key

    with IdentityRegistry(settings.effective_registry_url) as registry:
        ensure_worker_key(settings, registry, admin_key=admin_key(registry, settings.keys_dir))
        signing.register_everyone(registry, settings.keys_dir)


async def spawn(
    args: list[str], env: Mapping[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *args,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )


async def wait_for_file(path: Path, *, within: float) -> None:
    await helpers.eventually(path.exists, what=f"{path} to be written", within=within)


def gatekeeper_worker() -> list[str]:
    """The real ``gatekeeper worker`` command."""
    return [sys.executable, "-m", "gatekeeper", "worker"]


async def stop(process: asyncio.subprocess.Process | None) -> None:
    """End a worker process whatever state it is in (for ``finally`` blocks)."""
    if process is None or process.returncode is not None:
        return
    try:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)
    except TimeoutError:
        process.kill()
        await process.wait()
    except ProcessLookupError:
        pass


async def has_pollers(client: Client, task_queue: str) -> bool:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(response.pollers) > 0

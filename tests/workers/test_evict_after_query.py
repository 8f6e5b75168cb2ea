"""``GATEKEEPER_EVICT_AFTER_QUERY``: a worker drops a run from its cache after a status query.

docs/running.md, "A cached copy that missed an update"; the SDK-only reproduction is
``python -m tests.faults.sdk_repro_cached_update --mitigation evict-after-query`` (``all``) or
``--mitigation evict-grown-query`` (``stale``).
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from gatekeeper.errors import ConfigError
from gatekeeper.settings import EvictAfterQuery, Settings
from tests.helpers import running_worker
from workers.worker import build_worker


@workflow.defn(sandboxed=False)
class Waits:
    def __init__(self) -> None:
        self.done = False
        self.queries = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return 7

    @workflow.query
    def ping(self) -> str:
        return "pong"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


def cached_runs(worker: Worker) -> set[str]:
    workflow_worker = worker._workflow_worker
    assert workflow_worker is not None
    return set(workflow_worker._running_workflows)


async def run_case(client: Client, tmp_path: Path, *, evict: EvictAfterQuery) -> tuple[bool, int]:
    """Start a run, query it, and say whether it was still cached 2 s after the answer; then
    finish it and return its result."""
    settings = Settings(data_dir=tmp_path, evict_after_query=evict)
    task_queue = f"evict-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(1) as pool:
        worker = build_worker(
            client,
            settings,
            task_queue=task_queue,
            workflows=[Waits],
            activities=[],
            activity_executor=pool,
        )
        async with worker:
            handle = await client.start_workflow(
                Waits.run, id=f"evict-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            # The first query may ride on the first workflow task; the second comes on its own
            # (a "legacy" query, the kind a watcher's status query is).
            assert await handle.query(Waits.ping) == "pong"
            assert await handle.query(Waits.ping) == "pong"
            run_id = handle.result_run_id
            assert run_id is not None
            cached = True
            for _ in range(40):
                await asyncio.sleep(0.05)
                cached = run_id in cached_runs(worker)
                if not cached:
                    break
            # Still answers, and finishes, from history.
            assert await handle.query(Waits.ping) == "pong"
            await handle.signal(Waits.finish)
            result = await asyncio.wait_for(handle.result(), 20)
    return cached, result


class TestEvictAfterQuery:
    """With ``all``, a run a worker answered a query for leaves that worker's cache and its next
    task replays from history and completes; with ``off`` (the default) and with ``stale`` the
    release's own worker keeps the run cached across its queries."""

    async def test_all_evicts_after_a_query(self, env: WorkflowEnvironment, tmp_path: Path) -> None:
        cached, result = await run_case(env.client, tmp_path, evict="all")
        assert not cached
        assert result == 7

    async def test_off_keeps_the_cache(self, env: WorkflowEnvironment, tmp_path: Path) -> None:
        cached, result = await run_case(env.client, tmp_path, evict="off")
        assert cached
        assert result == 7

    async def test_stale_keeps_the_owners_cache(
        self, env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        cached, result = await run_case(env.client, tmp_path, evict="stale")
        assert cached
        assert result == 7

    def test_setting_from_the_environment(self, tmp_path: Path) -> None:
        base = {"GATEKEEPER_DATA_DIR": str(tmp_path)}
        assert Settings.from_env(base).evict_after_query == "stale"
        for mode in ("off", "stale", "all"):
            env = {**base, "GATEKEEPER_EVICT_AFTER_QUERY": mode.upper()}
            assert Settings.from_env(env).evict_after_query == mode
        with pytest.raises(ConfigError, match="GATEKEEPER_EVICT_AFTER_QUERY must be off, stale"):
            Settings.from_env({**base, "GATEKEEPER_EVICT_AFTER_QUERY": "1"})


class TestStaleDropsACopyMadeForQueries:
    """With ``stale``, a worker that has run none of a release's tasks drops the copy it built to
    answer a status query (the history it was built from may end in another worker's task in
    flight), and the release still finishes on it from history."""

    async def test_a_query_only_copy_is_evicted(
        self, env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        client = env.client
        task_queue = f"evict-{uuid.uuid4().hex[:8]}"
        # Another worker runs the first task without caching it (no sticky queue to wait on).
        async with running_worker(
            client, task_queue, workflows=[Waits], activities=[], max_cached_workflows=0
        ):
            handle = await client.start_workflow(
                Waits.run, id=f"evict-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
            assert await handle.query(Waits.ping) == "pong"
        run_id = handle.result_run_id
        assert run_id is not None
        settings = Settings(data_dir=tmp_path, evict_after_query="stale")
        with ThreadPoolExecutor(1) as pool:
            worker = build_worker(
                client,
                settings,
                task_queue=task_queue,
                workflows=[Waits],
                activities=[],
                activity_executor=pool,
            )
            async with worker:
                assert await handle.query(Waits.ping) == "pong"
                cached = True
                for _ in range(40):
                    await asyncio.sleep(0.05)
                    cached = run_id in cached_runs(worker)
                    if not cached:
                        break
                assert not cached
                await handle.signal(Waits.finish)
                assert await asyncio.wait_for(handle.result(), 20) == 7

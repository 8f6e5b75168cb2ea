"""The start's ``wait_started`` update cannot be used to grow a release's history: sent again
after the start, by the stock ``temporal`` CLI or any client, it is refused in one line by its
validator, and the release, its status and its history stay as they were."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from gatekeeper.models import UpdateResult
from gatekeeper.models.status import STARTED_UPDATE
from tests import factories
from tests.workflows.conftest import Harness
from tests.workflows.test_interop import temporal
from tests.workflows.test_start_update import updates


async def quiet_history(harness: Harness, rid: str) -> int:
    """The release's history length once it waits with nothing in flight (its first
    notifications and audit writes done), so that any later event is the test's doing."""
    handle = harness.handle(rid)
    for _ in range(200):
        raw = (await handle.describe()).raw_description
        if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
            first = len((await handle.fetch_history()).events)
            await asyncio.sleep(0.2)
            if len((await handle.fetch_history()).events) == first:
                return first
        await asyncio.sleep(0.05)
    raise AssertionError(f"release {rid} never became quiet")


class TestWaitStartedAfterTheStart:
    """Once the release has started, ``wait_started`` is refused (``already_started``) and
    leaves no trace, whoever sends it."""

    async def test_sdk_client(self, harness: Harness) -> None:
        rid = f"r-uws-{uuid.uuid4().hex[:8]}"
        await harness.start(factories.spec(rid))
        events = await quiet_history(harness, rid)
        before = await harness.releases.status(rid)

        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await harness.handle(rid).execute_update(STARTED_UPDATE, result_type=UpdateResult)

        cause = raised.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "already_started"
        assert cause.message == f"release {rid} has started; read it with the get_status query"
        after = await harness.releases.status(rid)
        assert after.status_version == before.status_version
        history = await harness.handle(rid).fetch_history()
        assert len(history.events) == events, "a validator's refusal leaves no trace"
        assert updates(history) == [STARTED_UPDATE]
        await harness.handle(rid).terminate("test over")

    async def test_temporal_cli_with_an_argument(self, harness: Harness) -> None:
        rid = f"r-uws-{uuid.uuid4().hex[:8]}"
        await harness.start(factories.spec(rid))
        events = await quiet_history(harness, rid)

        code, out = await temporal(
            harness,
            "workflow", "update", "execute",
            "-w", f"release-{rid}",
            "--name", STARTED_UPDATE,
            "--input", '{"padding": "' + "x" * 10_000 + '"}',
        )  # fmt: skip

        assert code != 0
        assert f"release {rid} has started; read it with the get_status query" in out
        history = await harness.handle(rid).fetch_history()
        assert len(history.events) == events
        assert updates(history) == [STARTED_UPDATE]
        await harness.handle(rid).terminate("test over")

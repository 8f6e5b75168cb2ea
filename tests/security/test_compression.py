"""Payload compression, attacked from outside, and workers and clients with mixed settings.

Every Gatekeeper worker inflates compressed payloads (``binary/zlib``) whatever its own setting,
so anyone who reaches the namespace can hand it one: a zip bomb (a few KiB that inflate to
gigabytes) or a malformed stream. Neither may raise in the codec (that fails the workflow task
and wedges the release) nor inflate past Temporal's 2 MiB payload limit: the update carrying it
is rejected with one line, the same through a raw Temporal client and the stock ``temporal``
CLI, and nothing is recorded. Every test drives a real worker (its converter built by
:func:`gatekeeper.client.data_converter`, as ``gatekeeper worker`` builds it) on the session dev
server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.client import data_converter
from gatekeeper.codec_refusals import COMPRESSED_PAYLOAD_REFUSED
from gatekeeper.compression import ENCODING, MAX_INFLATED_BYTES
from gatekeeper.ids import release_workflow_id
from gatekeeper.models import ReleaseStatus
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.releases import Releases
from gatekeeper.settings import Algorithm, Settings
from tests import factories, signing
from tests.faults.pipeline import awaiting_gate, fast_policy, seed_partners, status_until
from tests.helpers import running_worker
from tests.replaying import use_converter
from workers.devserver import temporal_executable

APPROVAL = {"decider": "sam.safety", "role": "safety"}
#: What an accepted update or a failing workflow task would add to a history.
UPDATE_OR_FAILURE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
}
BOMB_MESSAGE = (
    f"refused a compressed payload: it inflates beyond {MAX_INFLATED_BYTES // 1024} KiB, "
    "the payload size limit"
)


def zip_bomb(inflated: int = 32 * 1024 * 1024) -> Payload:
    """A valid compressed payload of a few tens of KiB that inflates to ``inflated`` bytes."""
    inner = Payload(metadata={"encoding": b"json/plain"}, data=b"[" * inflated)
    return Payload(
        metadata={"encoding": ENCODING}, data=zlib.compress(inner.SerializeToString(), 9)
    )


#: Attacks: (payload, the one-line refusal it gets).
ATTACKS = {
    "zip-bomb": (zip_bomb(), BOMB_MESSAGE),
    "malformed": (
        Payload(metadata={"encoding": ENCODING}, data=b"\x78\x9cnot-deflate"),
        "refused a compressed payload: it is not valid zlib data",
    ),
}


@dataclass
class Deployment:
    """A worker on its own task queue built with ``compression``; ``releases`` is a Gatekeeper
    client (its own setting), ``bare`` a raw Temporal client without any codec."""

    env: WorkflowEnvironment
    releases: Releases
    bare: Client
    task_queue: str

    def bare_handle(self, release_id: str) -> WorkflowHandle:  # type: ignore[type-arg]
        return self.bare.get_workflow_handle(release_workflow_id(release_id))

    async def started(self, **overrides: Any) -> ReleaseStatus:
        release_id = f"sec-zlib-{uuid.uuid4().hex[:8]}"
        await self.releases.start(factories.spec(release_id, **overrides))
        return await status_until(self.releases, release_id, awaiting_gate("internal_review"))

    async def events(self, release_id: str) -> list[EventType.ValueType]:
        history = await self.releases.handle(release_id).fetch_history()
        return [event.event_type for event in history.events]

    async def encodings(self, release_id: str) -> set[bytes]:
        """Every payload encoding in the release's history's inputs and results."""
        history = await self.releases.handle(release_id).fetch_history()
        found: set[bytes] = set()

        def visit(node: object) -> None:
            if isinstance(node, dict):
                encoding = node.get("metadata", {}).get("encoding")
                if isinstance(encoding, str):
                    found.add(base64.b64decode(encoding))
                for value in node.values():
                    visit(value)
            elif isinstance(node, list):
                for value in node:
                    visit(value)

        for event in history.events:
            visit(json_format.MessageToDict(event))
        return found

    async def approve(self, release_id: str) -> None:
        await asyncio.wait_for(
            self.releases.handle(release_id).execute_update(
                "approve", await signing.signed(self.releases, release_id, "approve", APPROVAL)
            ),
            30,
        )


DeploymentFactory = Callable[..., AbstractAsyncContextManager[Deployment]]


@pytest_asyncio.fixture(loop_scope="session")
async def deployment(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> DeploymentFactory:
    """A factory of one deployment per test, on the test's ``task_queue``: the after-test replay
    check replays its histories (compressed payloads included) with the worker's converter."""

    @asynccontextmanager
    async def running(
        *, worker: Algorithm = "off", client: Algorithm = "off"
    ) -> AsyncIterator[Deployment]:
        settings = Settings(
            task_queue=task_queue, data_dir=tmp_path / task_queue, payload_compression=worker
        )
        worker_client = Client(
            **{**env.client.config(), "data_converter": data_converter(settings)}
        )
        client_settings = Settings(task_queue=task_queue, payload_compression=client)
        releases_client = Client(
            **{**env.client.config(), "data_converter": data_converter(client_settings)}
        )
        # The after-test replay check reads compressed payloads through the same codec.
        use_converter(task_queue, data_converter(settings))
        adapters = open_adapters(settings)
        seed_partners(settings.effective_registry_url)
        factories.install_policy(adapters.policies, fast_policy(), default=True)
        try:
            async with running_worker(worker_client, task_queue, adapters, threads=4):
                yield Deployment(
                    env,
                    Releases(releases_client, task_queue, signer=signing.signer()),
                    env.client,
                    task_queue,
                )
        finally:
            adapters.close()

    return running


async def temporal_cli(d: Deployment, *args: str) -> tuple[int, str]:
    target = d.env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        temporal_executable(),
        *args,
        "--address",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


class TestCompressedUpdateRefused:
    """A zip bomb or a malformed compressed payload sent as an update's argument by a raw
    Temporal client is rejected before the validator with one line (non-retryable
    ``compressed_payload_refused``), whether or not the worker compresses itself; nothing is
    recorded, no workflow task fails, and the release still answers a real approval at once."""

    @pytest.mark.parametrize("worker", ["off", "zlib"])
    @pytest.mark.parametrize("attack", list(ATTACKS))
    async def test_raw_client(
        self, deployment: DeploymentFactory, attack: str, worker: Algorithm
    ) -> None:
        payload, message = ATTACKS[attack]
        async with deployment(worker=worker) as d:
            before = await d.started()
            rid = before.release_id
            events_before = await d.events(rid)
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await asyncio.wait_for(
                    d.bare_handle(rid).execute_update("approve", RawValue(payload)), 30
                )
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == COMPRESSED_PAYLOAD_REFUSED and cause.non_retryable
            assert cause.message.startswith(message), cause.message
            assert "\n" not in cause.message
            assert await d.releases.status(rid) == before
            new_events = set((await d.events(rid))[len(events_before) :])
            assert not new_events & UPDATE_OR_FAILURE_EVENTS, "no failed task, nothing recorded"
            await d.approve(rid)
            approved = await d.releases.status(rid)
            assert [a.person for a in approved.gates["internal_review"].decisions] == ["sam.safety"]
            await d.releases.handle(rid).terminate("test over")

    @pytest.mark.parametrize("attack", list(ATTACKS))
    async def test_temporal_cli(self, deployment: DeploymentFactory, attack: str) -> None:
        """The stock CLI sends the same bytes (``--input-meta encoding=binary/zlib``) and shows
        the same line."""
        payload, message = ATTACKS[attack]
        async with deployment() as d:
            before = await d.started()
            rid = before.release_id
            events_before = await d.events(rid)
            code, out = await temporal_cli(
                d,
                "workflow",
                "update",
                "execute",
                "-w",
                release_workflow_id(rid),
                "--name",
                "approve",
                "--input-meta",
                f"encoding={ENCODING.decode()}",
                "--input-base64",
                "--input",
                base64.b64encode(payload.data).decode(),
            )
            assert code != 0, out
            assert message in out, out
            assert f"(type: {COMPRESSED_PAYLOAD_REFUSED}, retryable: false)" in out, out
            assert await d.releases.status(rid) == before
            new_events = set((await d.events(rid))[len(events_before) :])
            assert not new_events & UPDATE_OR_FAILURE_EVENTS
            await d.releases.handle(rid).terminate("test over")


class TestCompressedStartRefused:
    """A release started with a zip bomb as its input fails at once, non-retryable, before any
    activity or timer: no failed workflow task retried forever."""

    async def test_zip_bomb_start(self, deployment: DeploymentFactory) -> None:
        async with deployment() as d:
            rid = f"sec-bomb-{uuid.uuid4().hex[:8]}"
            handle = await d.bare.start_workflow(
                WORKFLOW_TYPE,
                RawValue(zip_bomb()),
                id=release_workflow_id(rid),
                task_queue=d.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 30)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == COMPRESSED_PAYLOAD_REFUSED and cause.non_retryable
            assert cause.message == BOMB_MESSAGE
            events = [e.event_type for e in (await handle.fetch_history()).events]
            assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
            assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
            assert EventType.EVENT_TYPE_TIMER_STARTED not in events
            assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events


class TestMixedSettings:
    """A worker and a client with different compression settings run a release together: what
    one compressed the other reads (start input, updates, results, queries, activity payloads),
    and the history replays."""

    @pytest.mark.parametrize(("worker", "client"), [("zlib", "off"), ("off", "zlib")])
    async def test_release_across_settings(
        self, deployment: DeploymentFactory, worker: Algorithm, client: Algorithm
    ) -> None:
        async with deployment(worker=worker, client=client) as d:
            # Evidence enough that the client's start input is over the threshold too.
            spec = factories.spec("any")
            extra = [
                e.model_copy(update={"id": f"{e.id}-annex-{n}", "uri": f"{e.uri}#annex-{n}"})
                for n in range(4)
                for e in spec.evidence
            ]
            before = await d.started(evidence=[*spec.evidence, *extra])
            rid = before.release_id
            await d.approve(rid)
            after = await d.releases.status(rid)
            assert [a.person for a in after.gates["internal_review"].decisions] == ["sam.safety"]
            audit = await d.releases.audit(rid)
            assert audit, "the audit query answers across settings"
            encodings = await d.encodings(rid)
            assert ENCODING in encodings, encodings  # somebody compressed something
            assert b"json/plain" in encodings  # and small payloads stayed plain JSON
            await d.releases.handle(rid).terminate("test over")


def test_bomb_fits_in_an_update() -> None:
    """The attack is real: small on the wire, far beyond the bound inflated."""
    payload, _ = ATTACKS["zip-bomb"]
    assert payload.ByteSize() < 128 * 1024
    assert len(zlib.decompress(payload.data)) > 16 * MAX_INFLATED_BYTES
    json.dumps(base64.b64encode(payload.data).decode())  # passes as one CLI argument

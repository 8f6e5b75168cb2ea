"""A release run by an encrypting (and compressing) worker: the server holds only ciphertext,
Gatekeeper and the Temporal CLI (through the codec server) read it back."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.client import data_converter
from gatekeeper.codec import ENCODING, EncryptionCodec, keyring_from_settings
from gatekeeper.codec_server import create_app, serve
from gatekeeper.compression import ENCODING as COMPRESSED
from gatekeeper.compression import CodecChain
from gatekeeper.errors import DecisionRefused
from gatekeeper.ids import release_workflow_id
from gatekeeper.models import DecisionKind, ModelRef
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, replaying, signing
from tests.codec.keys import env_keys
from tests.faults.pipeline import (
    awaiting_gate,
    collect,
    fast_policy,
    run_to_launch,
    seed_partners,
    status_until,
)
from tests.helpers import running_worker
from workers.devserver import temporal_executable


@dataclass
class Encrypted:
    """An encrypting worker on a fresh task queue, and clients with and without the codec.
    Payload compression is on too: one chain compresses, then encrypts."""

    env: WorkflowEnvironment
    releases: Releases
    codec: CodecChain
    settings: Settings

    @property
    def target(self) -> str:
        return self.env.client.service_client.config.target_host


@pytest_asyncio.fixture(loop_scope="session")
async def encrypted(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Encrypted]:
    settings = Settings(
        task_queue=task_queue,
        data_dir=tmp_path / "data",
        codec_keys=env_keys(),
        payload_compression="zlib",
    )
    converter = data_converter(settings)
    assert isinstance(converter.payload_codec, CodecChain)
    replaying.use_converter(task_queue, converter)  # its histories replay decrypted, at teardown
    client = Client(**{**env.client.config(), "data_converter": converter})
    adapters = open_adapters(settings)
    seed_partners(settings.effective_registry_url)
    async with running_worker(client, task_queue, adapters):
        yield Encrypted(
            env,
            Releases(client, task_queue, signer=signing.signer()),
            converter.payload_codec,
            settings,
        )
    adapters.close()


def payloads_outside_search_attributes(message: Message) -> Iterator[Payload]:
    """Every payload in ``message``, skipping search attributes (indexed, so never encrypted)."""
    if isinstance(message, Payload):
        yield message
        return
    if isinstance(message, SearchAttributes):
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = (
                value.values() if field.message_type.fields_by_name["value"].message_type else []
            )
        elif field.is_repeated:
            items = value
        else:
            items = [value]
        for item in items:
            yield from payloads_outside_search_attributes(item)


def _patch_marker(event: HistoryEvent) -> bool:
    """The SDK records ``workflow.patched`` ids itself, bypassing the codec: code ids, not data."""
    attributes = event.marker_recorded_event_attributes
    return (
        event.HasField("marker_recorded_event_attributes")
        and attributes.marker_name == "core_patch"
    )


def without_search_attributes(event: HistoryEvent) -> bytes:
    copy = HistoryEvent()
    copy.CopyFrom(event)

    def strip(message: Message) -> None:
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.full_name == SearchAttributes.DESCRIPTOR.full_name:
                message.ClearField(field.name)
            elif field.is_repeated and not field.message_type.GetOptions().map_entry:
                for item in value:
                    strip(item)
            elif not field.is_repeated:
                strip(value)

    strip(copy)
    return copy.SerializeToString()


async def raw_history(env: WorkflowEnvironment, release_id: str) -> list[HistoryEvent]:
    """The history as the server stores it, read over gRPC with no data converter at all."""
    response = await env.client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=env.client.namespace,
            execution={"workflow_id": release_workflow_id(release_id)},
        )
    )
    return list(response.history.events)


class TestEncryptedRelease:
    """With codec keys set, a full release stores no readable payload on the server; the
    worker, the Releases API and the Temporal CLI (via the codec server) still read it all."""

    async def test_server_sees_only_ciphertext(self, encrypted: Encrypted) -> None:
        marker = f"aurora-{uuid.uuid4().hex[:8]}"
        release_id = f"enc-{uuid.uuid4().hex[:8]}"
        spec = factories.spec(release_id, model=ModelRef(name=marker, version="2.0.0"))
        policy = fast_policy(window=1.0, partner_period=0.5)
        await factories.start_release(
            encrypted.releases, encrypted.settings.effective_registry_url, spec, policy
        )
        outcome = await run_to_launch(encrypted.releases, release_id)

        status = await encrypted.releases.status(release_id)
        assert status.spec.model.name == marker
        evidence = collect(
            encrypted.settings.data_dir, encrypted.settings.effective_registry_url, release_id
        )
        evidence.assert_exactly_once(outcome)

        events = [e for e in await raw_history(encrypted.env, release_id) if not _patch_marker(e)]
        payloads = [p for e in events for p in payloads_outside_search_attributes(e)]
        assert len(payloads) > 20, "a full release carries many payloads"
        plain = [
            (e.event_type, p.metadata.get("encoding"), p.data[:80])
            for e in events
            for p in payloads_outside_search_attributes(e)
            if p.metadata["encoding"] != ENCODING
        ]
        assert not plain, f"unencrypted payloads in history: {plain}"
        leaked = [e.event_type for e in events if marker.encode() in without_search_attributes(e)]
        assert not leaked, f"model name readable in events {leaked}"
        # The same bytes open with the codec: nothing was lost, only sealed.
        opened = await encrypted.codec.decode(payloads)
        assert any(marker.encode() in p.data for p in opened)
        assert {p.metadata["encoding"] for p in opened} == {b"json/plain"}
        # Large payloads were compressed inside the ciphertext, small ones were not.
        keyring = keyring_from_settings(encrypted.settings)
        assert keyring is not None
        decrypted = await EncryptionCodec(keyring).decode(payloads)
        inner = {p.metadata["encoding"] for p in decrypted}
        assert inner == {COMPRESSED, b"json/plain"}, inner

    async def test_refusal_messages_are_encrypted_but_readable(self, encrypted: Encrypted) -> None:
        release_id = f"enc-{uuid.uuid4().hex[:8]}"
        spec = factories.spec(release_id)
        policy = fast_policy()
        await factories.start_release(
            encrypted.releases, encrypted.settings.effective_registry_url, spec, policy
        )
        await status_until(encrypted.releases, release_id, awaiting_gate("internal_review"))
        # An evidence author may not approve it: an audited refusal, so its failure is in history.
        with pytest.raises(DecisionRefused) as refused:
            await encrypted.releases.decide(
                release_id, DecisionKind.APPROVE, factories.decision(factories.AUTHOR, "safety")
            )
        assert refused.value.rule == "separation_of_duties"
        assert "Encoded failure" not in str(refused.value)
        assert "author" in str(refused.value)
        await encrypted.releases.handle(release_id).terminate("test over")
        events = await raw_history(encrypted.env, release_id)
        failures = [
            e.workflow_execution_update_completed_event_attributes.outcome.failure
            for e in events
            if e.HasField("workflow_execution_update_completed_event_attributes")
        ]
        stored = [f for f in failures if f.ByteSize()]
        assert stored, "the refused update should be recorded"
        assert all(f.message == "Encoded failure" for f in stored)

    async def test_temporal_cli_decodes_through_codec_server(self, encrypted: Encrypted) -> None:
        marker = f"aurora-{uuid.uuid4().hex[:8]}"
        release_id = f"enc-{uuid.uuid4().hex[:8]}"
        spec = factories.spec(release_id, model=ModelRef(name=marker, version="2.0.0"))
        policy = fast_policy()
        await factories.start_release(
            encrypted.releases, encrypted.settings.effective_registry_url, spec, policy
        )
        try:
            app = create_app(encrypted.codec, token="s3cret-codec-token")
            async with serve(app, "127.0.0.1", 0) as url:
                base = [
                    temporal_executable(),
                    "workflow",
                    "show",
                    "--workflow-id",
                    release_workflow_id(release_id),
                    "--address",
                    encrypted.target,
                    "--output",
                    "json",
                ]
                decoded = await _run(
                    *base, "--codec-endpoint", url, "--codec-auth", "Bearer s3cret-codec-token"
                )
                sealed = await _run(*base)
        finally:
            await encrypted.releases.handle(release_id).terminate("test over")
        decoded_payloads = _payload_texts(json.loads(decoded))
        sealed_payloads = _payload_texts(json.loads(sealed))
        assert any(marker in text for text in decoded_payloads), "CLI should show the start input"
        assert not any("binary/" in text for text in decoded_payloads), "all decoded"
        assert not any(marker in text for text in sealed_payloads)
        assert any("binary/encrypted" in text for text in sealed_payloads)


def _payload_texts(node: object) -> list[str]:
    """Every payload in the CLI's JSON history (search attributes aside: they are never
    encrypted), its metadata and data decoded from base64."""
    found: list[str] = []
    if isinstance(node, dict):
        if "metadata" in node and "data" in node:
            parts = [*node["metadata"].values(), node["data"]]
            found.append(" ".join(base64.b64decode(p).decode(errors="replace") for p in parts))
        for key, value in node.items():
            if key != "searchAttributes":
                found += _payload_texts(value)
    elif isinstance(node, list):
        for value in node:
            found += _payload_texts(value)
    return found


async def _run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()

"""Payload encryption and the codec server, attacked from outside.

With codec keys set, a client *without* the keys that reaches the namespace must not be able to
act on a release by sending plain JSON (the worker used to accept it), and the codec server must
not decrypt for whoever can reach it. Every test drives a real encrypting worker on the session
dev server, a Temporal client with no codec, the ``gatekeeper codec-server`` command, or HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.client import data_converter
from gatekeeper.codec import (
    ENCODING,
    KEY_ID,
    PLAINTEXT_REFUSED,
    UNDECRYPTABLE_PAYLOAD,
    EncryptionCodec,
)
from gatekeeper.codec_server import MAX_BODY_BYTES, create_app, serve
from gatekeeper.errors import NoAnswer
from gatekeeper.ids import release_workflow_id
from gatekeeper.models import ReleaseStatus
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.codec.keys import b64, codec, env_keys
from tests.deploy.cli import admin_command
from tests.faults.pipeline import awaiting_gate, fast_policy, seed_partners, status_until
from tests.helpers import eventually, running_worker
from tests.workers.helpers import free_ports
from tests.workflows.conftest import Harness
from workers.devserver import temporal_executable

#: What a client without the keys sends: the decision the Temporal CLI docs show.
PLAIN_APPROVAL = {"decider": "sam.safety", "role": "safety"}
UI = "https://temporal-ui.example:8443"
TOKEN = "codec-server-test-token"
SEALED_TEXT = b'{"model":"aurora-secret"}'
#: What an accepted update or a failing workflow task would add to a history.
UPDATE_OR_FAILURE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
}


@dataclass
class Deployment:
    """An encrypting worker on its own task queue; ``releases`` has the keys, ``bare`` has not."""

    env: WorkflowEnvironment
    releases: Releases
    bare: Client
    converter: DataConverter
    task_queue: str

    def bare_handle(self, release_id: str) -> WorkflowHandle:  # type: ignore[type-arg]
        return self.bare.get_workflow_handle(release_workflow_id(release_id))

    async def started(self) -> ReleaseStatus:
        """A release (started with the keys) waiting for its internal review."""
        release_id = f"sec-codec-{uuid.uuid4().hex[:8]}"
        await self.releases.start(factories.spec(release_id))  # the default: fast_policy()
        return await status_until(self.releases, release_id, awaiting_gate("internal_review"))

    async def message(self, error: ApplicationError) -> str:
        """The refusal's message as an operator with the keys reads it (it is encrypted)."""
        assert isinstance(error.failure, Failure)
        decoded = await self.converter.decode_failure(error.failure)
        return str(decoded.message) if isinstance(decoded, ApplicationError) else str(decoded)

    async def events(self, release_id: str) -> list[EventType.ValueType]:
        history = await self.releases.handle(release_id).fetch_history()
        return [event.event_type for event in history.events]


DeploymentFactory = Callable[..., AbstractAsyncContextManager[Deployment]]


@pytest_asyncio.fixture(loop_scope="session")
async def deployment(env: WorkflowEnvironment, tmp_path: Path) -> DeploymentFactory:
    @asynccontextmanager
    async def running(
        *, allow_plaintext: bool = False, keys: str | None = None, task_queue: str | None = None
    ) -> AsyncIterator[Deployment]:
        task_queue = task_queue or f"tq-{uuid.uuid4().hex[:12]}"
        settings = Settings(
            task_queue=task_queue,
            data_dir=tmp_path / task_queue,
            codec_keys=keys or env_keys(),
            codec_allow_plaintext=allow_plaintext,
        )
        converter = data_converter(settings)
        client = Client(**{**env.client.config(), "data_converter": converter})
        fresh = not settings.data_dir.exists()  # a second worker on the queue shares its files
        adapters = open_adapters(settings)
        if fresh:
            seed_partners(settings.effective_registry_url)
            # Releases here name no policy: they run under the store's default, this one.
            factories.install_policy(adapters.policies, fast_policy(), default=True)
        try:
            async with running_worker(client, task_queue, adapters, threads=4):
                yield Deployment(
                    env,
                    Releases(client, task_queue, signer=signing.signer()),
                    env.client,
                    converter,
                    task_queue,
                )
        finally:
            adapters.close()

    return running


class TestPlaintextRefused:
    """With encryption on, a payload that is not encrypted is refused by the worker: a plain
    JSON update from a client without the keys is rejected before its validator, one line,
    non-retryable, and nothing changes; a plain JSON start fails that workflow at once; a forged
    ciphertext update is refused the same way and leaves the release answering; the migration
    switch accepts plaintext again."""

    async def test_plaintext_update_is_refused_and_changes_nothing(
        self, deployment: DeploymentFactory
    ) -> None:
        async with deployment() as d:
            before = await d.started()
            rid = before.release_id
            events_before = await d.events(rid)
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await d.bare_handle(rid).execute_update("approve", PLAIN_APPROVAL)
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == PLAINTEXT_REFUSED and cause.non_retryable
            message = await d.message(cause)
            assert message.startswith("refused a payload that is not encrypted (encoding ")
            assert "GATEKEEPER_CODEC_ALLOW_PLAINTEXT=1" in message and "\n" not in message

            after = await d.releases.status(rid)
            assert after == before, "a refused plaintext update must change nothing"
            assert not after.gates["internal_review"].decisions
            # The release's own notifications may still be completing; nothing else is new.
            new_events = set((await d.events(rid))[len(events_before) :])
            assert not new_events & UPDATE_OR_FAILURE_EVENTS, "a rejected update leaves no trace"
            # The same decision with the keys is accepted: the refusal was the encryption's.
            await d.releases.handle(rid).execute_update(
                "approve", await signing.signed(d.releases, rid, "approve", PLAIN_APPROVAL)
            )
            approved = await d.releases.status(rid)
            assert [a.person for a in approved.gates["internal_review"].decisions] == ["sam.safety"]
            await d.releases.handle(rid).terminate("test over")

    async def test_plaintext_start_fails_the_workflow_at_once(
        self, deployment: DeploymentFactory
    ) -> None:
        async with deployment() as d:
            rid = f"sec-plain-{uuid.uuid4().hex[:8]}"
            # Its content does not matter: it is refused before it is read.
            handle = await d.bare.start_workflow(
                WORKFLOW_TYPE,
                {"spec": {"release_id": rid}, "policy_sha256": "0" * 64},
                id=release_workflow_id(rid),
                task_queue=d.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), 30)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == PLAINTEXT_REFUSED and cause.non_retryable
            assert "not encrypted" in await d.message(cause)
            events = await d.events(rid)
            assert events[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
            assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events
            assert EventType.EVENT_TYPE_TIMER_STARTED not in events
            assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events

    @pytest.mark.parametrize("key_id", [b"k9", b"k2"], ids=["unknown-key", "known-key"])
    async def test_forged_ciphertext_update_is_refused_without_wedging(
        self, deployment: DeploymentFactory, key_id: bytes
    ) -> None:
        async with deployment() as d:
            before = await d.started()
            rid = before.release_id
            events_before = await d.events(rid)
            forged = Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=b"\0" * 40)
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await asyncio.wait_for(
                    d.bare_handle(rid).execute_update("approve", RawValue(forged)), 30
                )
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == UNDECRYPTABLE_PAYLOAD and cause.non_retryable
            message = await d.message(cause)
            assert "wrong key or altered data" in message or "not configured" in message
            assert "\n" not in message
            assert await d.releases.status(rid) == before
            new_events = set((await d.events(rid))[len(events_before) :])
            assert not new_events & UPDATE_OR_FAILURE_EVENTS, "no failed task, nothing recorded"
            # The release still answers: a real approval goes through at once.
            await asyncio.wait_for(
                d.releases.handle(rid).execute_update(
                    "approve", await signing.signed(d.releases, rid, "approve", PLAIN_APPROVAL)
                ),
                30,
            )
            approved = await d.releases.status(rid)
            assert [a.person for a in approved.gates["internal_review"].decisions] == ["sam.safety"]
            await d.releases.handle(rid).terminate("test over")

    async def test_migration_switch_accepts_plaintext(self, deployment: DeploymentFactory) -> None:
        async with deployment(allow_plaintext=True) as d:
            before = await d.started()
            rid = before.release_id
            # Accepted; its result comes back encrypted, unreadable to this client.
            result = await d.bare_handle(rid).execute_update(
                "approve",
                await signing.signed(d.releases, rid, "approve", PLAIN_APPROVAL),
                result_type=RawValue,
            )
            assert result.payload.metadata["encoding"] == ENCODING
            after = await d.releases.status(rid)
            assert [a.person for a in after.gates["internal_review"].decisions] == ["sam.safety"]
            await d.releases.handle(rid).terminate("test over")


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


class TestKeyedCommandMeetsPlainWorker:
    """A Gatekeeper command with the keys refuses a plaintext answer too (a worker without the
    keys answered): one line, exit 3; the migration switch reads it."""

    async def test_status_from_a_worker_without_keys(self, harness: Harness) -> None:
        status = await harness.start()
        env = codec_env(
            TEMPORAL_ADDRESS=harness.env.client.service_client.config.target_host,
            TEMPORAL_NAMESPACE=harness.env.client.namespace,
            GATEKEEPER_TASK_QUEUE=harness.releases.task_queue,
        )
        command = ("release", "status", status.release_id, "--json")
        code, err = await run_cli(*command, env=env)
        assert code == 3, err
        [line] = err.strip().splitlines()
        # Under --json the one line is a JSON object (see gatekeeper.cli.main).
        refusal = json.loads(line)
        assert refusal["error"].startswith("refused a payload that is not encrypted"), line
        assert (refusal["exit_code"], refusal["type"]) == (3, "config")
        plain = await run_cli(*command[:-1], env=env)
        assert plain[0] == 3
        assert plain[1].strip().startswith("error: refused a payload that is not encrypted")
        code, err = await run_cli(*command, env={**env, "GATEKEEPER_CODEC_ALLOW_PLAINTEXT": "1"})
        assert code == 0, err


class TestTemporalCli:
    """The stock `temporal` CLI without the codec is refused like any client without keys;
    through the codec server, with its token, it steers releases as documented."""

    async def test_plain_cli_refused_codec_cli_accepted(
        self, deployment: DeploymentFactory
    ) -> None:
        async with deployment() as d:
            before = await d.started()
            rid = before.release_id
            update = [
                "workflow",
                "update",
                "execute",
                "-w",
                release_workflow_id(rid),
                "--name",
                "approve",
                "--input",
                json.dumps(await signing.signed(d.releases, rid, "approve", PLAIN_APPROVAL)),
            ]
            code, out = await temporal_cli(d, *update)
            assert code != 0 and "(type: plaintext_refused, retryable: false)" in out, out
            assert await d.releases.status(rid) == before

            keyring = codec().keyring
            app = create_app(EncryptionCodec(keyring, allow_plaintext=True), token=TOKEN)
            async with serve(app, "127.0.0.1", 0) as url:
                code, out = await temporal_cli(
                    d, *update, "--codec-endpoint", url, "--codec-auth", f"Bearer {TOKEN}"
                )
            assert code == 0, out
            after = await d.releases.status(rid)
            assert [a.person for a in after.gates["internal_review"].decisions] == ["sam.safety"]
            await d.releases.handle(rid).terminate("test over")


class TestMissingKey:
    """A payload sealed with a key this worker lacks (a rotation step skipped) fails the
    workflow task, which is retried; the release never fails for it, and resumes once a worker
    has the key."""

    async def test_release_resumes_when_the_key_arrives(
        self, deployment: DeploymentFactory
    ) -> None:
        newer = f"{env_keys()},k3:{b64(bytes(range(64, 96)))}"
        rid = f"sec-rotate-{uuid.uuid4().hex[:8]}"
        async with deployment() as old:
            ahead = Settings(task_queue=old.task_queue, codec_keys=newer)
            client = Client(**{**old.env.client.config(), "data_converter": data_converter(ahead)})
            # No worker can read the start: the start's update is given 2 s (not the client's
            # 30 s, of which the server waits 20 before it gives up) to find that out.
            early = Releases(
                client,
                old.task_queue,
                query_timeout=timedelta(seconds=1),
                update_timeout=timedelta(seconds=2),
            )
            with pytest.raises(NoAnswer):
                await early.start(factories.spec(rid))  # the default: fast_policy()
            events = await eventually(
                lambda: old.events(rid),
                lambda found: EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in found,
                what="the old worker to fail the task it cannot decrypt",
                within=10,
                every=0.1,
            )
            assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED not in events
        async with deployment(keys=newer, task_queue=old.task_queue) as new:
            status = await status_until(new.releases, rid, awaiting_gate("internal_review"))
            assert status.spec.release_id == rid
            assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED not in await new.events(rid)
            await new.releases.handle(rid).terminate("test over")


def body(*payloads: Payload) -> dict[str, object]:
    return json_format.MessageToDict(Payloads(payloads=list(payloads)))


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *admin_command(*args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, err.decode()


def codec_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_CODEC")}
    return {**env, "GATEKEEPER_CODEC_KEYS": env_keys(), "GATEKEEPER_LOG_FORMAT": "json", **extra}


@pytest_asyncio.fixture(loop_scope="session")
async def codec_server() -> AsyncIterator[str]:
    """``gatekeeper codec-server`` with a token and one UI origin, on a loopback port."""
    [port] = free_ports(1)
    process = await asyncio.create_subprocess_exec(
        *admin_command("codec-server", "--port", str(port), "--cors-origin", UI),
        env=codec_env(GATEKEEPER_CODEC_SERVER_TOKEN=TOKEN),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"http://127.0.0.1:{port}" in banner, banner
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


class TestCodecServerStart:
    """`gatekeeper codec-server` without a token refuses to start on anything but loopback:
    one line, exit 2, decided before any socket is opened."""

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com", "10.1.2.3"])
    async def test_no_token_off_loopback_refuses_to_start(self, host: str) -> None:
        # 192.0.2.1 (TEST-NET-1) is no address of this machine: had the command tried to bind
        # before checking, it would have failed with 'cannot listen' (exit 3), not this.
        code, err = await run_cli("codec-server", "--host", host, "--port", "9", env=codec_env())
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "set GATEKEEPER_CODEC_SERVER_TOKEN" in lines[0] and "loopback" in lines[0]
        assert "cannot listen" not in err

    async def test_with_a_token_the_same_host_gets_to_binding(self) -> None:
        code, err = await run_cli(
            "codec-server",
            "--host",
            "192.0.2.1",
            "--port",
            "9",
            env=codec_env(GATEKEEPER_CODEC_SERVER_TOKEN=TOKEN),
        )
        assert code == 3 and "cannot listen on 192.0.2.1:9" in err, err

    async def test_guessable_token_refused(self) -> None:
        code, err = await run_cli(
            "codec-server", env=codec_env(GATEKEEPER_CODEC_SERVER_TOKEN="letmein")
        )
        assert code == 2 and "at least 16 characters" in err, err
        assert "letmein" not in err and len(err.strip().splitlines()) == 1

    @pytest.mark.parametrize("origin", ["*", "http://ui.example/path", "null", "ui.example"])
    async def test_wildcard_or_malformed_origin_refused(self, origin: str) -> None:
        code, err = await run_cli("codec-server", "--cors-origin", origin, env=codec_env())
        assert code == 2 and "no wildcard" in err and len(err.strip().splitlines()) == 1, err


class TestCodecServerCalls:
    """Without the token nothing is decrypted (401); CORS answers only the configured UI
    origin, preflight included; oversized bodies are refused unread."""

    async def test_unauthenticated_decode_is_401_and_decrypts_nothing(
        self, codec_server: str
    ) -> None:
        [sealed] = await codec().encode(
            [Payload(metadata={"encoding": b"json/plain"}, data=SEALED_TEXT)]
        )
        async with httpx.AsyncClient(base_url=codec_server) as http:
            answers = [
                await http.post("/decode", json=body(sealed)),
                await http.post(
                    "/decode", json=body(sealed), headers={"Authorization": "Bearer x"}
                ),
                await http.post("/decode", json=body(sealed), headers={"Authorization": TOKEN}),
                await http.post("/encode", json=body(sealed)),
            ]
            authorised = await http.post(
                "/decode", json=body(sealed), headers={"Authorization": f"Bearer {TOKEN}"}
            )
        for answer in answers:
            assert answer.status_code == 401
            assert b"aurora" not in answer.content and "payloads" not in answer.json()
        assert authorised.status_code == 200 and b"aurora" not in authorised.content
        [opened] = json_format.ParseDict(authorised.json(), Payloads()).payloads
        assert opened.data == SEALED_TEXT

    async def test_other_origin_gets_no_cors(self, codec_server: str) -> None:
        async with httpx.AsyncClient(base_url=codec_server) as http:
            preflight = await http.options(
                "/decode",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
            call = await http.post(
                "/decode",
                json=body(),
                headers={"Origin": "https://evil.example", "Authorization": f"Bearer {TOKEN}"},
            )
            local = await http.options("/decode", headers={"Origin": "http://localhost:8233"})
        for answer in (preflight, call, local):
            assert "Access-Control-Allow-Origin" not in answer.headers
            assert "Access-Control-Allow-Credentials" not in answer.headers

    async def test_configured_origin_gets_cors(self, codec_server: str) -> None:
        async with httpx.AsyncClient(base_url=codec_server) as http:
            preflight = await http.options(
                "/decode",
                headers={
                    "Origin": UI,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
                },
            )
            refused = await http.post("/decode", json=body(), headers={"Origin": UI})
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == UI
        assert preflight.headers["Vary"] == "Origin"
        # The UI can read why it was refused, but is still refused.
        assert refused.status_code == 401
        assert refused.headers["Access-Control-Allow-Origin"] == UI

    async def test_oversized_body_refused(self, codec_server: str) -> None:
        big = Payload(metadata={"encoding": b"json/plain"}, data=b"x" * MAX_BODY_BYTES)
        async with httpx.AsyncClient(base_url=codec_server, timeout=60) as http:
            answer = await http.post(
                "/encode", json=body(big), headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert answer.status_code == 413
        assert "payloads" not in answer.json()

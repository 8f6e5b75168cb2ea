"""Channels and secrets are the worker's configuration, and where it may send is limited.

The attacks of issue 10: a policy defining an e-mail channel whose ``secret_env`` names a worker
variable and whose SMTP host is the attacker's; a webhook at the cloud metadata address; a host
name that resolves to loopback; and the secret leaking into history, the outbox or the logs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.adapters.webhook import SIGNATURE_HEADER, verify_signature
from gatekeeper.config import load_worker_config
from gatekeeper.errors import ConfigError
from gatekeeper.models import NotificationPolicy, NotificationRoute, Policy, Recipients
from gatekeeper.models.audit import AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.adapters.builders import write_worker_config
from tests.adapters.test_webhook import WebhookReceiver
from tests.faults.pipeline import gatekeeper_worker, has_pollers, spawn, stop, worker_env
from tests.helpers import activity_attempts, eventually, running_worker
from tests.workers.helpers import wait_until

#: What an attacker would like to read: the value of a variable of the worker's environment.
CANARY = "canary-7f3a9c1e-worker-secret-value"
SECRET_ENV = "GATEKEEPER_SECURITY_HOOK_SECRET"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _child_env() -> dict[str, str]:
    """This process's environment without Gatekeeper's settings (PYTHONPATH stays)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


ATTACK_CHANNELS = """\
notifications:
  channels:
    - id: exfiltrate
      type: email
      smtp_host: smtp.attacker.example
      smtp_port: 587
      sender: gatekeeper@attacker.example
      secret_env: SOME_WORKER_VARIABLE
  routes:
"""


def attack_policy(tmp_path: Path, replacement: str) -> tuple[Path, str]:
    """The packaged default policy with its notifications section changed to ``replacement``."""
    text = resources.files("gatekeeper.policies").joinpath("default.yaml").read_text()
    assert "notifications:\n  routes:\n" in text
    text = text.replace("notifications:\n  routes:\n", replacement, 1)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    return path, text


class TestPolicyCannotDefineAChannel:
    """A policy that defines a channel (the attacker's SMTP host, with ``secret_env`` naming a
    worker variable) or puts a channel's fields on a route is refused by ``gatekeeper policy
    check`` with exit 2 and one line located at the offending key, saying channels are defined
    in the worker's configuration; the variable's value is never read into the answer."""

    @pytest.mark.parametrize(
        ("replacement", "needle", "field"),
        [
            (ATTACK_CHANNELS, "  channels:\n    - id: exfiltrate", "notifications.channels"),
            (
                "notifications:\n  routes:\n    - events: ['*']\n      to: {concerned: true}\n"
                "      channels: [outbox]\n      secret_env: SOME_WORKER_VARIABLE\n",
                "      secret_env: SOME_WORKER_VARIABLE",
                "notifications.routes[0].secret_env",
            ),
            (
                "notifications:\n  routes:\n    - events: ['*']\n      to: {concerned: true}\n"
                "      url: http://169.254.169.254/latest/meta-data\n",
                "      url: http://169.254",
                "notifications.routes[0].url",
            ),
        ],
        ids=["channels-section", "secret-env-on-route", "url-on-route"],
    )
    def test_refused_by_policy_check(
        self, tmp_path: Path, replacement: str, needle: str, field: str
    ) -> None:
        path, text = attack_policy(tmp_path, replacement)
        env = {**_child_env(), "SOME_WORKER_VARIABLE": CANARY}

        result = cli("policy", "check", str(path), env=env)

        assert result.returncode == 2, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 1, result.stdout
        line = line_of(text, needle)
        assert re.fullmatch(
            rf"{re.escape(str(path))}:{line}:\d+: {re.escape(field)}: channels are defined in the "
            r"worker's configuration file \(gatekeeper.toml, \[channels.<name>\]\), not in a "
            r"policy; a route names them in its channels list",
            lines[0],
        ), lines[0]
        assert CANARY not in result.stdout + result.stderr

    def test_the_packaged_policy_itself_passes(self, tmp_path: Path) -> None:
        path, _ = attack_policy(tmp_path, "notifications:\n  routes:\n")

        result = cli("policy", "check", str(path), env=_child_env())

        assert result.returncode == 0, result.stdout + result.stderr


METADATA_DESTINATIONS = [
    ("http://169.254.169.254/latest/meta-data", "a cloud metadata address"),
    ("http://[fd00:ec2::254]/latest/meta-data", "a cloud metadata address"),
    ("http://[::ffff:169.254.169.254]/latest/meta-data", "a cloud metadata address"),
    ("http://metadata.google.internal/computeMetadata/v1/", "a cloud metadata host"),
    ("http://2852039166/latest/meta-data", "a cloud metadata address"),
    ("http://0xa9fea9fe/latest/meta-data", "a cloud metadata address"),
    ("http://169.254.10.1/", "a link-local address"),
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record (and refuse) every attempt to resolve a name or open a connection."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def attempt(*args: object, **kwargs: object) -> Any:
            attempts.append(name)
            raise AssertionError(f"{name} called during configuration load")

        return attempt

    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    yield attempts


class TestMetadataAddressRefusedAtLoad:
    """A worker configuration whose webhook points at the cloud metadata service (or any
    link-local address) is refused when it is loaded, in one line naming the file, the channel's
    field and the rule, before any name is resolved or any socket connected; the worker process
    exits 3 without even contacting Temporal."""

    @pytest.mark.parametrize(("url", "problem"), METADATA_DESTINATIONS)
    def test_refused_before_any_connection(
        self, tmp_path: Path, no_network: list[str], url: str, problem: str
    ) -> None:
        path = write_worker_config(
            tmp_path / "gatekeeper.toml",
            {"meta": {"type": "webhook", "url": url, "secret_env": SECRET_ENV}},
        )

        with pytest.raises(ConfigError) as caught:
            load_worker_config(path, required=True)

        assert str(caught.value) == (
            f"{path}: channels.meta.url: the destination is {problem}; destinations outside the "
            "public internet must be listed in [egress] allow_hosts"
        )
        assert no_network == []

    def test_the_worker_does_not_start(self, tmp_path: Path) -> None:
        path = write_worker_config(
            tmp_path / "gatekeeper.toml",
            {
                "meta": {
                    "type": "webhook",
                    "url": "http://169.254.169.254/latest/meta-data",
                    "secret_env": SECRET_ENV,
                }
            },
        )
        # A stand-in Temporal server: the worker must refuse its configuration before it dials.
        with socket.create_server(("127.0.0.1", 0)) as temporal:
            temporal.setblocking(False)
            port = temporal.getsockname()[1]
            env = {
                **_child_env(),
                "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
                "GATEKEEPER_DATA_DIR": str(tmp_path / "data"),
                "GATEKEEPER_CONFIG": str(path),
                SECRET_ENV: CANARY,
            }

            result = cli("worker", env=env)

            with pytest.raises(BlockingIOError):
                temporal.accept()  # nobody dialled the server
        assert result.returncode == 3, result.stdout + result.stderr
        [line] = result.stderr.strip().splitlines()
        assert "channels.meta.url: the destination is a cloud metadata address" in line
        assert CANARY not in result.stdout + result.stderr


@dataclass
class ConfiguredWorker:
    releases: Releases
    client: Client
    receiver: WebhookReceiver
    data_dir: Path


def hook_policy(events: list[str] | None = None) -> Policy:
    """The test policy, with events routed by name to channel ``hook`` (and the outbox)."""
    return factories.policy(
        notifications=NotificationPolicy(
            routes=[
                NotificationRoute(
                    events=events or ["*"],  # type: ignore[list-item]
                    to=Recipients(concerned=True),
                    channels=["hook", "outbox"],
                )
            ]
        )
    )


async def failed_notification(releases: Releases, release_id: str) -> AuditEvent:
    async def failures() -> list[AuditEvent]:
        return [e for e in await releases.audit(release_id) if e.action == "notification_failed"]

    found = await eventually(
        failures, what=f"a notification_failed audit event of {release_id}", within=30
    )
    return found[0]


@pytest_asyncio.fixture(loop_scope="session")
async def localhost_hook(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[ConfiguredWorker]:
    """A worker whose configuration file defines ``hook`` as ``http://localhost:<port>/...`` (a
    receiver that is really there), with no ``[egress] allow_hosts``."""
    receiver = WebhookReceiver()
    receiver.start()
    url = receiver.url.replace("127.0.0.1", "localhost")
    path = write_worker_config(
        tmp_path / "gatekeeper.toml",
        {"hook": {"type": "webhook", "url": url, "secret_env": SECRET_ENV}},
    )
    settings = Settings.from_env(
        {
            "GATEKEEPER_CONFIG": str(path),
            "GATEKEEPER_DATA_DIR": str(tmp_path / "data"),
            "GATEKEEPER_TASK_QUEUE": task_queue,
            SECRET_ENV: CANARY,
        }
    )
    adapters = open_adapters(settings)
    try:
        async with running_worker(env, task_queue, adapters):
            yield ConfiguredWorker(
                Releases(env.client, task_queue, signer=signing.signer()),
                env.client,
                receiver,
                settings.data_dir,
            )
    finally:
        adapters.close()
        receiver.stop()


class TestNameResolvingToLoopbackRefusedAtSend:
    """A host name passes the load-time check, but every connection resolves it and checks each
    address: ``localhost`` resolves to loopback, so with a real release the delivery is refused,
    audited once as a failed notification naming the channel and the rule (not the host, port or
    URL), not retried, and the receiver listening there gets nothing."""

    async def test_refused_and_audited(self, localhost_hook: ConfiguredWorker) -> None:
        releases, receiver = localhost_hook.releases, localhost_hook.receiver
        rid = f"lo-{uuid.uuid4().hex[:8]}"
        policy = hook_policy(["release_started"])

        store = Settings(data_dir=localhost_hook.data_dir).effective_registry_url
        await factories.start_release(releases, store, factories.spec(rid), policy)
        failed = await failed_notification(releases, rid)
        # Its one attempt was final: Temporal runs no notification of the release again.
        assert set(await activity_attempts(releases.handle(rid), "notify_stakeholders")) == {1}

        error = failed.details["error"]
        assert "webhook channel 'hook' refused" in error
        assert "resolves to a loopback address" in error
        port = str(receiver.url.split(":")[2].split("/")[0])
        assert "localhost" not in error and port not in error
        audits = [e for e in await releases.audit(rid) if e.action == "notification_failed"]
        assert audits == [failed]
        assert receiver.received == []


def history_text(history_json: str) -> str:
    """The history as JSON, plus every payload's data decoded (payload data is base64 in it)."""
    decoded: list[str] = [history_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                decoded.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history_json))
    return "\n".join(decoded)


class TestSecretsStayOnTheWorker:
    """A real worker process, configured by its TOML file, sends a real release's notifications
    to a loopback receiver (allowed in ``[egress]``): they arrive signed with the secret from the
    worker's environment, one fails (HTTP 400) and is audited, and the secret's value, the name of
    its variable and the channel's URL appear nowhere in the workflow history, in any file of the
    worker's data directory (outbox, send journal, audit store, registry) or in the worker's
    logs at debug level."""

    async def test_signed_deliveries_and_no_trace_of_the_secret(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        receiver = WebhookReceiver(answers=[400])
        receiver.start()
        data_dir = tmp_path / "data"
        config = write_worker_config(
            tmp_path / "gatekeeper.toml",
            {"hook": {"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}},
            allow_hosts=("127.0.0.1",),
        )
        environ = worker_env(
            env.client.service_client.config.target_host,
            task_queue,
            data_dir,
            GATEKEEPER_CONFIG=str(config),
            GATEKEEPER_LOG_LEVEL="DEBUG",
            **{SECRET_ENV: CANARY},
        )
        log = tmp_path / "worker.log"
        releases = Releases(env.client, task_queue, signer=signing.signer())
        rid = f"secret-{uuid.uuid4().hex[:8]}"
        worker = None
        try:
            worker = await spawn(gatekeeper_worker(), environ, log)
            await wait_until(lambda: has_pollers(env.client, task_queue))
            policy = hook_policy()
            store = Settings(data_dir=data_dir).effective_registry_url  # the worker's store
            await factories.start_release(releases, store, factories.spec(rid), policy)
            failed = await failed_notification(releases, rid)

            async def two_received() -> bool:  # the 400, then another notification delivered
                return len(receiver.received) >= 2

            await wait_until(two_received)
            history = await releases.handle(rid).fetch_history()
        finally:
            await stop(worker)
            receiver.stop()

        assert "HTTP 400" in failed.details["error"]
        for request in receiver.received:
            assert verify_signature(
                CANARY.encode(), request.headers[SIGNATURE_HEADER], request.body
            )
            assert CANARY not in request.body.decode()
        text = history_text(history.to_json())
        assert f"{rid}:release_started:0" in text, "payloads were decoded (the check can fail)"
        host_port = receiver.url.split("/")[2]
        for secret in (CANARY, SECRET_ENV, host_port):
            assert secret not in text, f"{secret!r} is in the workflow history"
        files = [p for p in data_dir.rglob("*") if p.is_file()]
        assert any(p.name == "outbox.jsonl" for p in files)
        for path in files:
            content = path.read_bytes()
            for secret in (CANARY, SECRET_ENV, host_port):
                assert secret.encode() not in content, f"{secret!r} is in {path}"
        logs = log.read_text()
        assert "notification" in logs, "the worker logged (the check can fail)"
        for secret in (CANARY, host_port):
            assert secret not in logs, f"{secret!r} is in the worker's logs"

"""``GATEKEEPER_TEMPORAL_TOKEN_FILE``: the bearer token a Gatekeeper process sends to Temporal.

The token becomes the client's API key (the SDK sends ``authorization: Bearer <token>``), read
when connecting and re-read while connected; a bad file is a one-line configuration error that
names the file and never quotes it. The dev server authorizes nobody, so these tests check what
the client holds and sends, not a server's verdict (tests/deploy/test_temporal_auth.py checks the
stack's server configuration).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import structlog
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from gatekeeper.client import connect, connect_config, keep_token_fresh
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from tests.deploy.cli import admin_command
from tests.helpers import eventually

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrZXItMSJ9.c2lnbmF0dXJlLW9uZQ"
RENEWED = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3b3JrZXItMSJ9.c2lnbmF0dXJlLXR3bw"


def settings_for(token_file: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"HOME": "/nonexistent", "GATEKEEPER_TEMPORAL_TOKEN_FILE": str(token_file), **env}
    )


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "worker.jwt"
    path.write_text(TOKEN + "\n")
    return path


class TestConnectionSettings:
    """The file's token is the API key; like TEMPORAL_API_KEY it turns TLS on unless
    TEMPORAL_TLS=false says the server has none."""

    def test_token_is_the_api_key(self, token_file: Path) -> None:
        config = connect_config(settings_for(token_file))
        assert config["api_key"] == TOKEN
        assert config["tls"] is True

    def test_tls_off_when_told(self, token_file: Path) -> None:
        config = connect_config(settings_for(token_file, TEMPORAL_TLS="false"))
        assert config["api_key"] == TOKEN and config["tls"] is False

    def test_not_both_an_api_key_and_a_token_file(self, token_file: Path) -> None:
        with pytest.raises(ConfigError, match="keep one") as refused:
            connect_config(settings_for(token_file, TEMPORAL_API_KEY="other-key-value"))
        assert "other-key-value" not in str(refused.value)

    def test_settings_keep_the_path_only(self, token_file: Path) -> None:
        settings = settings_for(token_file)
        assert settings.temporal_token_file == token_file
        assert TOKEN not in repr(settings)


class TestBadTokenFiles:
    """A file that does not hold exactly one token is refused in one line naming the file,
    never echoing what is in it."""

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "is empty"),
            (b"  \n\n", "is empty"),
            (b"Bearer " + TOKEN.encode(), "without 'Bearer'"),
            (TOKEN.encode() + b"\n" + RENEWED.encode(), "one token on one line"),
            ("tökén-secret".encode(), "non-ASCII"),
            (b"x" * (16 * 1024 + 1), "not a token"),
        ],
    )
    def test_refused(self, tmp_path: Path, content: bytes, message: str) -> None:
        path = tmp_path / "token"
        path.write_bytes(content)
        with pytest.raises(ConfigError) as refused:
            connect_config(settings_for(path))
        text = str(refused.value)
        assert message in text and str(path) in text
        assert "\n" not in text
        assert TOKEN not in text and "secret" not in text

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot be read: No such file"):
            connect_config(settings_for(tmp_path / "absent.jwt"))

    def test_cli_refuses_before_connecting(self, tmp_path: Path) -> None:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))
        }
        env["GATEKEEPER_TEMPORAL_TOKEN_FILE"] = str(tmp_path / "absent.jwt")
        env["TEMPORAL_ADDRESS"] = "127.0.0.1:1"  # nothing is tried: the refusal comes first
        result = subprocess.run(
            admin_command("health"), env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "GATEKEEPER_TEMPORAL_TOKEN_FILE" in lines[0] and "absent.jwt" in lines[0]


@pytest_asyncio.fixture
async def connected(env: WorkflowEnvironment, token_file: Path) -> AsyncIterator[Client]:
    """A Gatekeeper client of the dev server, connected with the token file (no TLS)."""
    target = env.client.service_client.config.target_host
    client = await connect(settings_for(token_file, TEMPORAL_ADDRESS=target, TEMPORAL_TLS="false"))
    yield client
    for task in asyncio.all_tasks():
        if task.get_name() == "gatekeeper-temporal-token":
            task.cancel()


async def _until(condition: Callable[[], bool]) -> None:
    # The condition is another task's attribute, set without an event to wait on.
    await eventually(condition, what="the token task to take the file's token", every=0.02)


class TestConnectedClient:
    """A connected client sends the file's token and takes a renewed one without reconnecting;
    an unreadable file keeps the last good token and says so without quoting a token."""

    async def test_sends_the_token(self, connected: Client) -> None:
        assert connected.api_key == TOKEN
        # The token goes with every call (the dev server ignores it, an authorizing one checks it).
        described = await connected.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=connected.namespace)
        )
        assert described.namespace_info.name == connected.namespace

    async def test_renewed_token_replaces_the_old(
        self, connected: Client, token_file: Path
    ) -> None:
        refresher = keep_token_fresh(connected, token_file, every=0.05)
        try:
            replacement = token_file.with_name("renewed.tmp")
            replacement.write_text(RENEWED + "\n")
            replacement.replace(token_file)  # how `temporal-auth issue --out` and Kubernetes renew
            await _until(lambda: connected.api_key == RENEWED)
            await connected.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=connected.namespace)
            )

            with structlog.testing.capture_logs() as logs:
                token_file.write_text("")
                await _until(lambda: any(e["event"] == "temporal_token_unreadable" for e in logs))
            assert connected.api_key == RENEWED, "an unreadable file keeps the last good token"
            assert not any(RENEWED in str(e) or TOKEN in str(e) for e in logs)
        finally:
            refresher.cancel()

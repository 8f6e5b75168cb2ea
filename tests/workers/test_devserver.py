"""DevServer: the embedded ``temporal server start-dev`` on a SQLite file."""

from __future__ import annotations

import os
import socket
import stat
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import RemoveSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey

from gatekeeper import search_attributes
from gatekeeper.errors import ConfigError, ConnectionFailed
from gatekeeper.namespace import ensure_search_attributes, registered_search_attributes
from tests.helpers import running_worker
from tests.workers.helpers import WaitForFinishWorkflow, free_ports
from workers.devserver import DevServer

EXPECTED_ATTRIBUTES = {
    "ModelName": "Keyword",
    "ModelVersion": "Keyword",
    "ReleaseStage": "Keyword",
    "ReleaseState": "Keyword",
    "RiskTier": "Keyword",
    "AwaitingRoles": "KeywordList",
    "GovernmentWindowEndsAt": "Datetime",
    "SubmittedBy": "Keyword",
    "AwaitingSince": "Datetime",
    "ReleaseOutcome": "Keyword",
}


def _server(data_dir: Path, **kwargs: object) -> DevServer:
    port, ui_port = free_ports(2)
    return DevServer(data_dir, port=port, ui_port=ui_port, **kwargs)  # type: ignore[arg-type]


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestStart:
    """A started server answers a client and serves the UI, keeps its database and log in the
    data directory, has every Gatekeeper search attribute registered, and is gone after stop."""

    async def test_start_and_stop(self, tmp_path: Path) -> None:
        server = _server(tmp_path / "data")
        async with server:
            assert server.pid is not None
            pid = server.pid
            assert await registered_search_attributes(server.client) == dict(
                sorted(EXPECTED_ATTRIBUTES.items())
            )
            assert server.db_path == tmp_path / "data" / "temporal.db"
            assert server.db_path.exists()
            assert server.log_path.exists()
            assert server.ui_url is not None
            async with httpx.AsyncClient() as http:
                assert (await http.get(server.ui_url)).status_code == 200
            assert server.client.namespace == "default"

        assert not _alive(pid)
        assert _port_is_free(server.port)
        with pytest.raises(RuntimeError):
            _ = server.client

    def test_command_line(self, tmp_path: Path) -> None:
        command = DevServer(tmp_path, port=7001, ui_port=8001, executable="temporal").command()
        joined = " ".join(command)

        assert command[:3] == ["temporal", "server", "start-dev"]
        assert f"--db-filename {tmp_path / 'temporal.db'}" in joined
        assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in joined
        assert "--port 7001" in joined and "--ui-port 8001" in joined
        assert "--namespace default" in joined
        assert "--log-format json --log-level warn" in joined
        assert "--search-attribute GovernmentWindowEndsAt=Datetime" in joined
        headless = DevServer(tmp_path, headless=True, executable="temporal").command()
        assert "--headless" in headless and "--ui-port" not in headless


class TestRestart:
    """A workflow started before a stop is still running after a restart on the same database,
    a worker can then finish it, and an attribute missing from an old database is registered."""

    async def test_data_survives_restart(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "data"
        task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        workflow_id = f"restart-{uuid.uuid4().hex[:8]}"

        async with _server(data_dir, headless=True) as first:
            await first.client.start_workflow(
                WaitForFinishWorkflow.run, "kept", id=workflow_id, task_queue=task_queue
            )
            # As if the database predated an attribute Gatekeeper added later.
            await first.client.operator_service.remove_search_attributes(
                RemoveSearchAttributesRequest(namespace="default", search_attributes=["RiskTier"])
            )
            assert "RiskTier" not in await registered_search_attributes(first.client)

        async with _server(data_dir, headless=True) as second:
            client = second.client
            handle = client.get_workflow_handle(workflow_id)
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
            assert await registered_search_attributes(client) == dict(
                sorted(EXPECTED_ATTRIBUTES.items())
            )
            async with running_worker(
                client, task_queue, workflows=[WaitForFinishWorkflow], activities=[], threads=1
            ):
                await handle.signal(WaitForFinishWorkflow.finish, "done")
                assert await handle.result() == "kept: done"


class TestStartFailures:
    """A server that cannot start fails in one line that says why and where the log is, and
    leaves no process behind."""

    async def test_port_in_use(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            (ui_port,) = free_ports(1)

            with pytest.raises(ConfigError, match=rf"gRPC port {port} .* already in use.*--port"):
                await DevServer(tmp_path, port=port, ui_port=ui_port).start()
            with pytest.raises(ConfigError, match=rf"UI port {port} .* already in use.*--ui-port"):
                await DevServer(tmp_path, port=ui_port, ui_port=port).start()

    async def test_server_exits_during_start(self, tmp_path: Path) -> None:
        server = _server(tmp_path, extra_args=["--no-such-flag"])

        with pytest.raises(ConfigError, match=r"exited with code \d+: unknown flag") as raised:
            await server.start()
        assert str(raised.value).endswith(f"see {server.log_path}")

    async def test_server_that_never_answers(self, tmp_path: Path) -> None:
        hung = tmp_path / "hung-temporal"
        pid_file = tmp_path / "pid"
        hung.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
        hung.chmod(hung.stat().st_mode | stat.S_IEXEC)
        server = _server(tmp_path, executable=str(hung), startup_timeout=0.5, stop_grace=2)

        with pytest.raises(ConnectionFailed, match=r"did not come up .* within 0.5 s; see "):
            await server.start()
        assert not _alive(int(pid_file.read_text()))


class TestEnsureSearchAttributes:
    """Ensuring the attributes on a server that has them changes nothing, and an attribute
    registered with another type is a ConfigError rather than a silent mismatch."""

    async def test_nothing_to_add(self, client: Client) -> None:
        assert await ensure_search_attributes(client) == []
        registered = await registered_search_attributes(client)
        assert {k.name for k in search_attributes.ALL} <= registered.keys()

    async def test_type_conflict(self, client: Client) -> None:
        wrong = SearchAttributeKey.for_text("ModelName")

        with pytest.raises(ConfigError, match=r"ModelName is registered as Keyword .* needs Text"):
            await ensure_search_attributes(client, [wrong])

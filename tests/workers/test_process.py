"""``gatekeeper dev`` end to end, as a user runs it: a real process, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import urllib.request
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from gatekeeper.adapters.policy_store import PolicyStore
from gatekeeper.identity.keyfiles import read_private_key
from gatekeeper.identity.registry import IdentityRegistry, private_key_id
from gatekeeper.identity.worker_key import WORKER_PRINCIPAL, ensure_worker_key
from gatekeeper.settings import Settings
from tests.helpers import eventually
from tests.identity_fixtures import admin_key
from tests.workers.helpers import free_ports

#: The commands on an app of their own: the test does not depend on the root app's wiring.
_RUN_APP = (
    "import sys, typer; from gatekeeper.cli.process import register; "
    "app = typer.Typer(); register(app); app(sys.argv[1:])"
)


async def _read_until(stream: asyncio.StreamReader, marker: str) -> str:
    seen = ""
    while marker not in seen:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"output ended before {marker!r}:\n{seen}")
        seen += line.decode()
    return seen


async def _pollers(client: Client, task_queue: str) -> bool:
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0


async def _stop_leftovers(process: asyncio.subprocess.Process, data_dir: Path) -> None:
    """After a failure, stop the command and the server it started (in its own session)."""
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
    pid_file = data_dir / "temporal.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def _another_shell_reaches_it(exports: list[str], tmp_path: Path, root_id: str) -> None:
    """A shell elsewhere, with only the pasted lines, reads the engine's registry and keys."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    env["HOME"] = str(tmp_path / "other-home")
    script = "\n".join([*exports, f"{sys.executable} -m gatekeeper keys list --json"])
    shell = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=elsewhere, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(shell.communicate(), 60)
    assert shell.returncode == 0, err.decode()
    assert root_id in {key["key_id"] for key in json.loads(out)}
    assert not (elsewhere / ".gatekeeper").exists()


class TestDev:
    """``gatekeeper dev`` starts a server and a worker, says where everything is, keeps its data
    under the data directory, and on Ctrl-C stops the worker then the server and exits 0."""

    async def test_dev_runs_and_stops_on_ctrl_c(self, tmp_path: Path) -> None:
        port, ui_port, console_port = free_ports(3)
        data_dir = tmp_path / "gk"
        keys_dir = tmp_path / "keys"
        stderr_path = tmp_path / "stderr.log"
        env = {
            **os.environ,
            "GATEKEEPER_DATA_DIR": str(data_dir),
            "GATEKEEPER_KEYS_DIR": str(keys_dir),
            "GATEKEEPER_TASK_QUEUE": "dev-test",
            "GATEKEEPER_LOG_FORMAT": "json",
        }
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _RUN_APP,
                "dev", "--port", str(port), "--ui-port", str(ui_port),
                "--console-port", str(console_port),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
            )  # fmt: skip
        try:
            assert process.stdout is not None
            banner = await asyncio.wait_for(_read_until(process.stdout, "Press Ctrl-C"), 60)
            assert f"127.0.0.1:{port}" in banner
            assert f"http://127.0.0.1:{ui_port}" in banner
            # The web console, with development sign-in (loopback only), serves its sign-in page.
            assert (
                f"Console           http://localhost:{console_port}  (development sign-in, "
                "loopback only)" in banner
            )
            signin = await asyncio.to_thread(
                urllib.request.urlopen, f"http://127.0.0.1:{console_port}/signin", timeout=10
            )
            assert signin.status == 200 and b'data-testid="dev-banner"' in signin.read()
            assert str(data_dir) in banner
            assert "dev-test" in banner
            assert f"TEMPORAL_ADDRESS=127.0.0.1:{port}" in banner
            assert "GovernmentWindowEndsAt (Datetime)" in banner
            # The packaged policies are installed in the worker's store; the standard is default.
            assert "voluntary-standard@1 installed, sha256" in banner
            assert "it is now the default" in banner
            assert "voluntary-standard-demo@1 installed" in banner
            # A local trust root is made on first start; its key is in the keys dir.
            [trust] = [line for line in banner.splitlines() if "Trust root" in line]
            root_id = private_key_id(read_private_key(keys_dir / "identity-root.pem"))
            assert f"{root_id} (created, key {keys_dir / 'identity-root.pem'}" in trust
            [roots] = [line for line in banner.splitlines() if "Evidence roots" in line]
            assert roots.split("Evidence roots")[1].strip() == f"{data_dir}, {Path.cwd()}"

            # Lines to paste in another shell: everything its commands need, paths absolute.
            exports = [line.strip() for line in banner.splitlines() if "  export " in line]
            assert exports == [
                f"export TEMPORAL_ADDRESS=127.0.0.1:{port}",
                "export TEMPORAL_NAMESPACE=default",
                f"export GATEKEEPER_DATA_DIR={data_dir}",
                f"export GATEKEEPER_KEYS_DIR={keys_dir}",
                f"export GATEKEEPER_TRUST_ROOT={root_id}",
                "export GATEKEEPER_TASK_QUEUE=dev-test",
            ]
            await _another_shell_reaches_it(exports, tmp_path, root_id)

            client = await Client.connect(f"127.0.0.1:{port}")
            await eventually(
                lambda: _pollers(client, "dev-test"), what="a poller on dev-test", within=10
            )

            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            await _stop_leftovers(process, data_dir)

        events = [
            json.loads(line)["event"]
            for line in stderr_path.read_text().splitlines()
            if line.startswith("{")
        ]
        assert events.index("worker stopped") < events.index("dev server stopped")
        assert (data_dir / "temporal.db").exists()
        with PolicyStore(Settings(data_dir=data_dir).effective_registry_url) as store:
            assert [p.ref for p in store.list()] == [
                "voluntary-standard@1",
                "voluntary-standard-demo@1",
            ]
            default = store.default()
            assert default is not None and default.ref == "voluntary-standard@1"
        assert (data_dir / "temporal.log").exists()
        assert not (data_dir / "temporal.pid").exists()
        # The worker's own key was made and registered by the local root.
        with IdentityRegistry(Settings(data_dir=data_dir).effective_registry_url) as registry:
            [worker_key] = registry.keys(WORKER_PRINCIPAL)
            assert worker_key.key_id == private_key_id(
                read_private_key(data_dir / "worker-key.pem")
            )
            assert worker_key.certified_by == root_id


class TestWorkerCommand:
    """``gatekeeper worker`` connects where TEMPORAL_ADDRESS points, polls the settings' task
    queue, and exits 0 after a graceful stop on SIGTERM."""

    async def test_worker_runs_and_stops_on_sigterm(self, client: Client, tmp_path: Path) -> None:
        address = client.service_client.config.target_host
        task_queue = f"cmd-{uuid.uuid4().hex[:8]}"
        stderr_path = tmp_path / "stderr.log"
        # A cluster worker's key is registered by an identity admin before it starts.
        settings = Settings(data_dir=tmp_path / "gk", keys_dir=tmp_path / "keys")
        with IdentityRegistry(settings.effective_registry_url) as registry:
            ensure_worker_key(settings, registry, admin_key=admin_key(registry, settings.keys_dir))
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_NAMESPACE": client.namespace,
            "GATEKEEPER_DATA_DIR": str(tmp_path / "gk"),
            "GATEKEEPER_TASK_QUEUE": task_queue,
            "GATEKEEPER_LOG_FORMAT": "json",
        }
        with stderr_path.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _RUN_APP, "worker", "--register-search-attributes",
                stderr=stderr,
                env=env,
            )  # fmt: skip
        try:
            await eventually(
                lambda: _pollers(client, task_queue), what=f"a poller on {task_queue}", within=10
            )
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            await _stop_leftovers(process, tmp_path / "gk")

        lines = [json.loads(line) for line in stderr_path.read_text().splitlines()]
        started = next(line for line in lines if line["event"] == "worker started")
        assert started["address"] == address
        assert started["task_queue"] == task_queue
        assert lines[-1]["event"] == "worker stopped"

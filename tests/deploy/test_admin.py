"""The commands a deployment runs: the setup job's search-attribute registration, the worker
health check, and key generation, each in a child process against the real dev server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid

from temporalio.testing import WorkflowEnvironment

from gatekeeper import search_attributes
from tests.deploy.cli import admin_command
from tests.helpers import eventually, running_worker
from tests.workers.helpers import WaitForFinishWorkflow


async def gatekeeper(env: WorkflowEnvironment, *args: str, **extra: str) -> tuple[int, str, str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "GATEKEEPER_"))
    }
    environ.update(
        {
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "GATEKEEPER_LOG_FORMAT": "json",
            **extra,
        }
    )
    process = await asyncio.create_subprocess_exec(
        *admin_command(*args),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class TestSearchAttributeRegistration:
    """``search-attributes register --create-namespace`` makes a namespace ready for workers,
    and running it again changes nothing."""

    async def test_new_namespace_gets_every_attribute(self, env: WorkflowEnvironment) -> None:
        namespace = f"gk-{uuid.uuid4().hex[:8]}"
        code, out, err = await gatekeeper(
            env,
            "search-attributes",
            "register",
            "--namespace",
            namespace,
            "--create-namespace",
            "--wait",
            "30",
            "--json",
        )
        assert code == 0, err
        result = json.loads(out)
        expected = {key.name for key in search_attributes.ALL}
        assert set(result["added"]) == expected
        assert expected <= set(result["registered"])
        assert result["registered"]["AwaitingRoles"] == "KeywordList"

        code, out, err = await gatekeeper(
            env, "search-attributes", "register", "--namespace", namespace, "--json"
        )
        assert code == 0, err
        assert json.loads(out)["added"] == []

        code, out, err = await gatekeeper(
            env, "search-attributes", "list", "--namespace", namespace, "--json"
        )
        assert code == 0, err
        assert json.loads(out)["GovernmentWindowEndsAt"] == "Datetime"

    async def test_missing_namespace_without_create_is_an_error(
        self, env: WorkflowEnvironment
    ) -> None:
        code, _, err = await gatekeeper(
            env, "search-attributes", "register", "--namespace", f"nope-{uuid.uuid4().hex[:6]}"
        )
        assert code == 3
        assert "nope-" in err and "\n" not in err.strip()

    async def test_unreachable_server_waits_then_fails(self, env: WorkflowEnvironment) -> None:
        code, _, err = await gatekeeper(
            env, "search-attributes", "register", "--wait", "1", TEMPORAL_ADDRESS="127.0.0.1:1"
        )
        assert code != 0
        assert "cannot reach Temporal" in err


class TestHealth:
    """``gatekeeper health`` passes only while a worker polls the task queue."""

    async def test_no_worker_is_unhealthy(self, env: WorkflowEnvironment) -> None:
        code, _, err = await gatekeeper(
            env, "health", "--task-queue", f"empty-{uuid.uuid4().hex[:8]}"
        )
        assert code == 1
        assert "no worker polls" in err

    async def test_polling_worker_is_healthy(
        self, env: WorkflowEnvironment, task_queue: str
    ) -> None:
        async with running_worker(
            env.client, task_queue, workflows=[WaitForFinishWorkflow], activities=[], threads=1
        ):

            async def polled() -> bool:
                code, _, _ = await gatekeeper(env, "health", "--task-queue", task_queue)
                return code == 0

            await eventually(polled, what="`gatekeeper health` to pass", within=10)


class TestCodecKey:
    """``gatekeeper codec-key`` prints a fresh usable key; a bad id is refused."""

    async def test_prints_usable_key(self, env: WorkflowEnvironment) -> None:
        code, out, err = await gatekeeper(env, "codec-key", "--id", "2026-q1")
        assert code == 0, err
        key_id, key = out.strip().split(":")
        assert key_id == "2026-q1" and len(base64.b64decode(key)) == 32

    async def test_bad_id_refused(self, env: WorkflowEnvironment) -> None:
        code, _, err = await gatekeeper(env, "codec-key", "--id", "has space")
        assert code == 3 and "key id" in err

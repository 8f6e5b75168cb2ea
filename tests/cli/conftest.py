"""The real ``gatekeeper`` command, run in-process against the session's Temporal server.

Each command calls ``asyncio.run``, so it runs in a worker thread (``asyncio.to_thread``): the
test's own event loop keeps hosting the release worker meanwhile. The connection and the task
queue reach the command the way they reach a user's shell: through the environment.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client
from typer.testing import CliRunner, Result

from gatekeeper.cli import common, main
from gatekeeper.models import Policy
from tests import factories, signing
from tests.helpers import eventually
from tests.workflows.conftest import Harness, harness

__all__ = ["Cli", "cli", "harness"]


class Cli:
    """Runs ``gatekeeper ...`` with TEMPORAL_ADDRESS, task queue and policy of one harness."""

    def __init__(self, harness: Harness, policy_file: Path) -> None:
        self.harness = harness
        self.runner = CliRunner()
        self.env = {
            "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": harness.env.client.namespace,
            "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
            "GATEKEEPER_POLICY": str(policy_file),
            "GATEKEEPER_DATA_DIR": str(harness.data_dir),
            "GATEKEEPER_KEYS_DIR": str(signing.write_keys(policy_file.parent / "keys")),
        }

    async def __call__(self, *args: str) -> Result:
        return await asyncio.to_thread(self.runner.invoke, main.app, list(args), env=self.env)


def write_policy(policy: Policy, path: Path) -> Path:
    path.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
    return path


@pytest.fixture
def cli(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    if not main.app.registered_groups:
        main._register()
    # The shared console measured its width at import; tables here are checked, not wrapped.
    monkeypatch.setattr(common.console, "width", 200)
    return Cli(harness, write_policy(factories.policy(), tmp_path / "policy.yaml"))


async def until_visible(client: Client, query: str, ids: Iterable[str], within: float = 10) -> None:
    """Wait until visibility returns exactly ``ids`` for ``query`` (it lags the workflows)."""
    wanted = {f"release-{i}" for i in ids}

    async def found() -> set[str]:
        return {w.id async for w in client.list_workflows(query)}

    await eventually(
        found, lambda ids: ids == wanted, what=f"visibility to list {sorted(wanted)}", within=within
    )


def new_id() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"

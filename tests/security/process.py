"""``gatekeeper`` run as a child process against a harness's server, as a person's shell runs it.

The child goes through the real entry point (``python -m gatekeeper``, error boundary and all).
It is awaited, so the test's event loop keeps hosting the release worker meanwhile.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from tests import signing
from tests.deploy.cli import admin_command
from tests.workflows.conftest import Harness


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def environment(harness: Harness | None = None, **extra: str) -> dict[str, str]:
    """The child's environment: ours (PYTHONPATH included), pointed at the harness's server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    env["COLUMNS"] = "400"  # wide enough that no table wraps what a test looks for
    # Every test person's signing key (the test workers trust them): requests are signed.
    env["GATEKEEPER_KEYS_DIR"] = str(signing.shared_keys_dir())
    if harness is not None:
        env |= {
            "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": harness.env.client.namespace,
            "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
            "GATEKEEPER_DATA_DIR": str(harness.data_dir),
        }
    return env | extra


async def gatekeeper(*args: str, env: dict[str, str], cwd: Path | None = None) -> Ran:
    """Run ``gatekeeper <args>`` and collect what it printed (within a minute)."""
    process = await asyncio.create_subprocess_exec(
        *admin_command(*args),
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return Ran(process.returncode or 0, out.decode(), err.decode())

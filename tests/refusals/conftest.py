"""Run the real ``gatekeeper`` entry point (its error boundary included) in-process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli import main
from gatekeeper.models import ReleaseStatus
from tests import factories, signing
from tests.workflows.conftest import Harness, harness

__all__ = ["Outcome", "Run", "decision_state", "harness", "run"]

_LOCK = asyncio.Lock()


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"expected one error line, got {lines!r}"
        return lines[0]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _invoke(argv: list[str], env: dict[str, str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main.main(argv)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return Outcome(code, out.getvalue(), err.getvalue())


class Run:
    """``await run("review", "approve", ...)`` as a person would type it, against the harness."""

    def __init__(self, harness: Harness, workdir: Path) -> None:
        self.harness = harness
        self.workdir = workdir
        policy_file = workdir / "policy.yaml"
        policy_file.write_text(
            yaml.safe_dump(factories.policy().model_dump(mode="json"), sort_keys=False)
        )
        self.env = {
            "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": harness.env.client.namespace,
            "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
            "GATEKEEPER_POLICY": str(policy_file),
            "GATEKEEPER_DATA_DIR": str(harness.data_dir),
            "GATEKEEPER_KEYS_DIR": str(signing.write_keys(workdir / "keys")),
            "COLUMNS": "200",
        }

    async def __call__(self, *argv: str) -> Outcome:
        async with _LOCK:  # stdout/stderr/env are process-wide
            return await asyncio.to_thread(_invoke, list(argv), self.env)


@pytest.fixture
def run(harness: Harness, tmp_path: Path) -> Run:
    return Run(harness, tmp_path)


def decision_state(status: ReleaseStatus) -> Any:
    """Everything a refused request must leave untouched."""
    return (
        status.stage,
        status.state,
        status.spec,
        {k: [d.model_dump() for d in g.decisions] for k, g in status.gates.items()},
        status.government.model_dump(),
        [h.model_dump() for h in status.holds],
        [d.model_dump() for d in status.delegations],
        [g.model_dump() for g in status.grants],
    )

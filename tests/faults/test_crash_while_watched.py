"""The worker holding a release is SIGKILLed at aimed moments while a client asks for its status
every 100 ms; a standby takes over each time. The release launches, every notification and
grant happens once, the dossier verifies, no worker logs a non-determinism error, and the saved
history replays from scratch.

``make test`` aims at ten points over two releases; ``make soak`` (``SOAK_RUNS=N``) repeats the
campaign N times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.faults.watched import AIMS, Run, Watcher

#: Two releases share the ten aims: consecutive timer aims are split so a standby is always warm.
CAMPAIGN = (
    frozenset(
        {"review-1", "review-3", "before-window-ends", "before-period-ends", "launch-approved"}
    ),
    frozenset({"review-2", "window-opened", "window-ended", "period-started", "partner-approved"}),
)
SOAK_RUNS = int(os.environ.get("SOAK_RUNS", "1"))


def test_the_campaign_aims_at_every_point() -> None:
    assert set().union(*CAMPAIGN) == set(AIMS)


async def campaign_part(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path, aims: frozenset[str]
) -> None:
    tmp_path.mkdir()
    run = Run(env, task_queue, tmp_path, aims)
    try:
        with Watcher(run.releases, run.release_id) as watcher:
            try:
                outcome = await run.drive()
            except BaseException:
                with contextlib.suppress(Exception):
                    await run.save_history()
                raise
        assert watcher.answers > 0
        await run.check(outcome)
    finally:
        await run.fleet.close()


class TestKilledWhileWatched:
    """Whatever moment the worker dies at, with people watching, the release comes out whole."""

    @pytest.mark.filterwarnings("always::tests.faults.watched.KnownSdkNondeterminism")
    @pytest.mark.parametrize("repetition", range(1, SOAK_RUNS + 1))
    async def test_release_survives_aimed_kills(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path, repetition: int
    ) -> None:
        """The campaign's parts run side by side, each release on its own task queue and
        workers (a kill in one never touches the other)."""
        del repetition
        await asyncio.gather(
            *(
                campaign_part(env, f"{task_queue}-{n}", tmp_path / f"part{n}", aims)
                for n, aims in enumerate(CAMPAIGN, start=1)
            )
        )

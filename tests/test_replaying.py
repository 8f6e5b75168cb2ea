"""The session's replay worker (:data:`tests.replaying.SESSION`), which the check every test
ends with shares: it reports a broken history as a failure and goes on replaying the next."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import WorkflowHistory

from tests.replaying import SESSION
from tests.test_replay import history_of, tampered_rejected

HISTORIES = Path(__file__).parent / "histories"


class TestSessionReplayer:
    """One replay worker, many tests' histories: each replayed in order, a broken one failing
    without stopping the worker, and results for every history handed to it."""

    async def test_a_broken_history_fails_and_the_next_still_replays(self) -> None:
        histories: list[WorkflowHistory] = [
            history_of(HISTORIES / "rejected.json"),
            tampered_rejected(),
            history_of(HISTORIES / "access_order.json"),
        ]
        results = [r async for r in SESSION.replay(histories)]
        assert [r.history for r in results] == histories
        intact, broken, order = results
        assert intact.replay_failure is None
        assert broken.replay_failure is not None and "Nondeterminism" in str(broken.replay_failure)
        assert order.replay_failure is None

        # A later test's histories go to the same worker.
        [again] = [r async for r in SESSION.replay([tampered_rejected()])]
        assert again.replay_failure is not None

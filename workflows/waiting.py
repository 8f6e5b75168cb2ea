"""The release's clock and its one way to wait (``ModelReleaseWorkflow`` holds a :class:`Waits`).

Every wait of the release, in the workflow and in the stage coroutines (through ``StageHost``),
goes through :meth:`Waits.sleep_until_change`; its docstring says why deadlines cannot drift.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

#: The shortest timer a wait starts: a clock already past still gets one (see sleep_until_change).
MIN_TIMER = timedelta(milliseconds=1)


class StaleClock(RuntimeError):
    """A timer fired in an activation whose clock is before its deadline (see
    ``Waits.sleep_until_change``). Not a Temporal failure type: raising it fails the workflow
    task, never the release; the task is retried from history."""


class Waits:
    """The pipeline's clock and waits: how many changes were committed (a wait wakes on the
    next), and the deadline whose timer fired last with the raw clock of its activation."""

    def __init__(self) -> None:
        self.changes = 0
        self.reached: datetime | None = None
        self.reached_clock: datetime | None = None
        #: Whether a wait woken by a change leaves its clocks' timers running (TIMER_PATCH):
        #: one timer per clock and deadline, started once, cancelled only when its deadline
        #: moves or no wait asks for it any more. Without it (releases started before), each
        #: wait starts a timer for its earliest clock and a change cancels it.
        self.keep_timers = False
        self._timers: dict[str, tuple[datetime, asyncio.Task[None]]] = {}

    def changed(self) -> None:
        """A change was committed: wake every wait."""
        self.changes += 1

    def now(self) -> datetime:
        """The pipeline's clock: ``workflow.now()``, except in the activation where a deadline's
        timer fired, where it is that deadline (see :meth:`sleep_until_change`)."""
        now = workflow.now()
        if self.reached is not None and now == self.reached_clock:
            return self.reached
        return now

    async def sleep_until_change(self, clocks: dict[str, datetime | None]) -> str | None:
        """Sleep until any state change, or until the earliest clock (a durable timer); return
        the name of the clock whose timer fired, or None if a change woke the pipeline.

        **Deadlines cannot drift.** Every wait of the release goes through here, and the rule is:
        *a fired timer is the deadline reached*; "is it time yet" is never derived again from
        ``workflow.now()`` in a way that could start a second timer for the same deadline.

        Why: ``workflow.now()`` is the start time of the workflow task being run, and it is not
        always the same live and on replay. When a worker dies and its release's timer fires
        while the next task waits on the dead worker's sticky queue, a fresh worker that answers
        a status query meanwhile applies the fired timer with the clock of the *previous* task
        (temporalio 1.35, server 1.32; docs/running.md has the reproduction). A loop
        ``while workflow.now() < end: wait_condition(..., timeout=end - now)`` then starts a
        second timer for the same deadline; replay, which sees the later clock, does not, and
        the history no longer replays (TMPRL1100 ... does not handle TimerStarted).

        The pattern, in this one place:

        - The fired deadline is remembered with the raw clock of its activation; for the rest of
          that activation :meth:`now` reads the deadline itself. Every decision the pipeline
          makes after a timer fired (``expire_holds``, ``refresh_gate``, ``window_blockers``,
          ``deadline_passed``, the partner period, reminders, escalation) compares deadlines
          with that value, which is the same live and on replay, and is at or past the deadline,
          so the deadline counts as reached (the ledger compares with ``<=``/``>=``).
        - Whether a timer is started never depends on the clock: a due clock always gets one,
          of at least a millisecond, even if the clock says it is already past.
        - Timer *durations* may differ live and on replay; Temporal does not compare them.
        - A timer that fires while ``workflow.now()`` is still before its deadline can only be
          that lagging clock (a real task starts after the timer fired). The activation then
          fails with :class:`StaleClock`, a workflow *task* failure (not the release's): the
          worker drops the run from its cache and the next task replays it from history with
          the true clock. Without this, the lagging activation's commands would be sent ahead
          of an update delivered in the same task, an order replay does not reproduce.

        Waits in stage coroutines (:mod:`gatekeeper.stages`, through ``StageHost``) are ``while``
        loops around this call that re-read the ledger through :meth:`now`; none keeps its own
        ``workflow.now() < end`` test.
        """
        if self.keep_timers:
            return await self._sleep_keeping_timers(clocks)
        seen = self.changes
        started = self.now()
        due = [(at, name) for name, at in clocks.items() if at is not None]
        if not due:
            await workflow.wait_condition(lambda: self.changes != seen)
            return None
        at, name = min(due)
        remaining = max(at - workflow.now(), MIN_TIMER)
        try:
            await workflow.wait_condition(
                lambda: self.changes != seen, timeout=remaining, timeout_summary=name
            )
        except TimeoutError:
            if workflow.now() < at:
                # Impossible in a true task (it starts after the timer fired, so at or past
                # ``at``): this activation runs on a clock that lags the history. Fail it so the
                # worker evicts the run and replays it from history with the right clock.
                raise StaleClock(
                    f"the timer of {name} fired but the clock reads {workflow.now().isoformat()}, "
                    f"before {at.isoformat()}: evicting to replay"
                ) from None
            self.reached = max(at, started)
            self.reached_clock = workflow.now()
            return name
        return None

    async def _sleep_keeping_timers(self, clocks: dict[str, datetime | None]) -> str | None:
        """:meth:`sleep_until_change` with one timer per clock and deadline (TIMER_PATCH).

        Each clock named in ``clocks`` has a running timer for its deadline; one the previous
        wait started for the same deadline is kept (a government response that does not move
        the window's end leaves its timer alone), one whose deadline moved or that no longer
        appears is cancelled. The same rules hold: a fired timer is its deadline reached, and
        whether a timer is started never depends on the clock.
        """
        seen = self.changes
        started = self.now()
        wanted = {name: at for name, at in clocks.items() if at is not None}
        for name in list(self._timers):
            if wanted.get(name) != self._timers[name][0]:
                self._timers.pop(name)[1].cancel()
        for name, at in sorted(wanted.items(), key=lambda item: (item[1], item[0])):
            if name not in self._timers:
                remaining = max(at - workflow.now(), MIN_TIMER)
                timer = asyncio.ensure_future(workflow.sleep(remaining, summary=name))
                self._timers[name] = (at, timer)

        def fired() -> list[tuple[datetime, str]]:
            return [(at, name) for name, (at, timer) in self._timers.items() if timer.done()]

        await workflow.wait_condition(lambda: self.changes != seen or bool(fired()))
        done = fired()
        if not done:
            return None
        at, name = min(done)
        del self._timers[name]
        if workflow.now() < at:
            raise StaleClock(
                f"the timer of {name} fired but the clock reads {workflow.now().isoformat()}, "
                f"before {at.isoformat()}: evicting to replay"
            )
        self.reached = max(at, started)
        self.reached_clock = workflow.now()
        return name

    def drop_timers(self) -> None:
        """Cancel the timers of clocks no wait asks for any more (a stage ended, a release
        resumed): they would otherwise fire later for nothing, in the timeline too."""
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

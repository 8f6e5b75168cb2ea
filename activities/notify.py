"""``notify_stakeholders``: deliver one notification to its recipients, once per delivery key."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.notifier import Notifier
from gatekeeper.models.io import NotifyRequest, NotifySummary

#: Seconds between heartbeats while a fan-out runs, even while one delivery waits on a slow
#: receiver; a worker that dies is then noticed within the activity's heartbeat timeout.
HEARTBEAT_EVERY = 2.0


class NotifyActivities:
    """Notification activities, bound to the worker's :class:`Notifier`."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    @activity.defn(name="notify_stakeholders")
    def notify_stakeholders(self, request: NotifyRequest) -> NotifySummary:
        """Deliver ``request.notification``; deliveries made by an earlier attempt are skipped.

        Cohort recipients fan out to their partners inside this one activity, so workflow history
        holds one small request and one small result (counts) however many partners a cohort
        has. Heartbeats carry the number of deliveries done.

        A channel name this worker's configuration does not define is not retried and nothing
        is sent in its place: the summary lists it under ``unconfigured`` and the workflow audits
        the notification as failed.
        """
        with activity_errors():
            request = NotifyRequest.model_validate(request)
            with _heartbeats() as progress:
                result = self._notifier.notify(request, progress=progress)
        summary = NotifySummary.of(request.notification, result)
        activity.logger.info(
            "notification %s: %d delivered, %d already delivered",
            summary.notification,
            summary.delivered,
            summary.already_delivered,
        )
        if summary.unconfigured:
            activity.logger.warning(
                "notification %s: channel(s) %s are not defined in this worker's configuration; "
                "nothing was sent on them",
                summary.notification,
                ", ".join(summary.unconfigured),
            )
        return summary


class _Progress:
    """Deliveries done so far; each report is also a heartbeat."""

    def __init__(self) -> None:
        self.done = 0

    def __call__(self, done: int) -> None:
        self.done = done
        activity.heartbeat(done)


@contextmanager
def _heartbeats() -> Iterator[_Progress]:
    """Report progress, and heartbeat every :data:`HEARTBEAT_EVERY` seconds from a helper thread
    while the block runs: a single delivery may block for a channel's whole time-out, and the
    heartbeat says only that this worker is alive (the channels bound each delivery)."""
    progress = _Progress()
    stopped = threading.Event()

    def beat() -> None:
        while not stopped.wait(HEARTBEAT_EVERY):
            activity.heartbeat(progress.done)

    # The activity context lives in a context variable: the helper thread runs in a copy.
    context = contextvars.copy_context()
    ticker = threading.Thread(target=context.run, args=(beat,), daemon=True)
    ticker.start()
    try:
        yield progress
    finally:
        stopped.set()
        ticker.join()

"""``notify_stakeholders``: deliver notifications to their recipients, once per delivery key.

It takes one notification (:class:`NotifyRequest`, what releases started before issue 16 send)
or every notification one workflow task produced (:class:`NotifyBatch`)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities._errors import activity_errors
from gatekeeper.adapters.notifier import Notifier
from gatekeeper.models.io import (
    NotifyBatch,
    NotifyBatchSummary,
    NotifyFailure,
    NotifyRequest,
    NotifySummary,
)

#: Seconds between heartbeats while a fan-out runs, even while one delivery waits on a slow
#: receiver; a worker that dies is then noticed within the activity's heartbeat timeout.
HEARTBEAT_EVERY = 2.0


class NotifyActivities:
    """Notification activities, bound to the worker's :class:`Notifier`."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    @activity.defn(name="notify_stakeholders")
    def notify_stakeholders(
        self, request: NotifyRequest | NotifyBatch
    ) -> NotifySummary | NotifyBatchSummary:
        """Deliver ``request.notification`` (or each of a batch's, see :meth:`notify_batch`);
        deliveries made by an earlier attempt are skipped.

        Cohort recipients fan out to their partners inside this one activity, so workflow history
        holds one small request and one small result (counts) however many partners a cohort
        has. Heartbeats carry the number of deliveries done.

        A channel name this worker's configuration does not define is not retried and nothing
        is sent in its place: the summary lists it under ``unconfigured`` and the workflow audits
        the notification as failed.
        """
        if isinstance(request, NotifyBatch):
            return self.notify_batch(request)
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

    def notify_batch(self, batch: NotifyBatch) -> NotifyBatchSummary:
        """Deliver every notification of ``batch`` in turn, each as :meth:`notify_stakeholders`
        delivers one; one failing does not stop the others.

        A notification that fails for good (or names channels this worker does not define) is
        listed in the summary's ``failed``, and the workflow audits it. One that may succeed
        later makes the attempt fail once the others are done, so Temporal retries the batch and
        the retry skips every key already delivered; the last attempt the retry policy allows
        lists it in ``failed`` instead, so the workflow audits exactly the notifications that
        failed."""
        summary = NotifyBatchSummary(notifications=len(batch.requests))
        retryable: list[tuple[str, ApplicationError]] = []
        with _heartbeats() as progress:
            for request in batch.requests:
                key = request.notification.idempotency_key
                offset = progress.done
                try:
                    with activity_errors():
                        result = self._notifier.notify(request, progress=progress.after(offset))
                except ApplicationError as err:
                    if err.non_retryable:
                        summary.failed.append(NotifyFailure(key=key, error=err.message))
                    else:
                        retryable.append((key, err))
                    continue
                progress(offset + len(result.deliveries))
                one = NotifySummary.of(request.notification, result)
                summary.deliveries += one.deliveries
                summary.delivered += one.delivered
                summary.already_delivered += one.already_delivered
                if one.unconfigured:
                    activity.logger.warning(
                        "notification %s: channel(s) %s are not defined in this worker's "
                        "configuration; nothing was sent on them",
                        key,
                        ", ".join(one.unconfigured),
                    )
                    summary.failed.append(NotifyFailure(key=key, unconfigured=one.unconfigured))
        activity.logger.info(
            "%d notification(s): %d delivered, %d already delivered, %d failed, %d to retry",
            summary.notifications,
            summary.delivered,
            summary.already_delivered,
            len(summary.failed),
            len(retryable),
        )
        if retryable:
            if not _last_attempt():
                key, first = retryable[0]
                raise ApplicationError(
                    f"{len(retryable)} of {summary.notifications} notification(s) not delivered "
                    f"yet (retried; delivered ones are skipped); {key}: {first.message}",
                    type=first.type,
                )
            summary.failed += [NotifyFailure(key=key, error=err.message) for key, err in retryable]
        return summary


def _last_attempt() -> bool:
    """Whether this is the last attempt the activity's retry policy allows."""
    info = activity.info()
    policy = info.retry_policy
    return policy is not None and 0 < policy.maximum_attempts <= info.attempt


class _Progress:
    """Deliveries done so far; each report is also a heartbeat."""

    def __init__(self) -> None:
        self.done = 0

    def __call__(self, done: int) -> None:
        self.done = done
        activity.heartbeat(done)

    def after(self, offset: int) -> Callable[[int], None]:
        """Progress of a part that starts once ``offset`` deliveries are done."""
        return lambda done: self(offset + done)


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

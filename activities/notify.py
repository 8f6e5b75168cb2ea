"""``notify_stakeholders``: deliver one notification to its recipients, once per delivery key."""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.notifier import Notifier
from gatekeeper.models.io import NotifyRequest, NotifyResult


class NotifyActivities:
    """Notification activities, bound to the worker's :class:`Notifier`."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    @activity.defn(name="notify_stakeholders")
    def notify_stakeholders(self, request: NotifyRequest) -> NotifyResult:
        """Deliver ``request.notification``; deliveries made by an earlier attempt are skipped.

        Heartbeats with the number of deliveries done, so a long fan-out can set a heartbeat
        timeout.
        """
        with activity_errors():
            request = NotifyRequest.model_validate(request)
            result = self._notifier.notify(request, progress=activity.heartbeat)
        activity.logger.info(
            "notification %s: %d delivered, %d already delivered",
            request.notification.idempotency_key,
            result.sent,
            len(result.deliveries) - result.sent,
        )
        return result

"""``publish_launch``: publish the public launch and return its receipt."""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.launch import LaunchPublisher
from gatekeeper.models.io import LaunchReceipt, LaunchRequest


class LaunchActivities:
    """Launch activities, bound to the worker's :class:`LaunchPublisher`."""

    def __init__(self, publisher: LaunchPublisher) -> None:
        self._publisher = publisher

    @activity.defn(name="publish_launch")
    def publish_launch(self, request: LaunchRequest) -> LaunchReceipt:
        """Publish once per idempotency key; a retry returns the first launch's receipt."""
        with activity_errors():
            request = LaunchRequest.model_validate(request)
            receipt = self._publisher.publish(request)
        activity.logger.info(
            "release %s launched on %s: %s",
            request.release_id,
            ", ".join(request.surfaces),
            receipt.launch_id,
        )
        return receipt

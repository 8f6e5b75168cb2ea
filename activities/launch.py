"""``publish_launch``: publish the public launch, record it in the access registry, return its receipt.

Recording the launch in the registry is what lets ``access check`` answer for a public model (and
an access order deny it to the persons it covers) after the release's workflow has ended.
"""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.launch import LaunchPublisher
from gatekeeper.adapters.registry import AccessRegistry, PublicLaunch
from gatekeeper.models.io import LaunchReceipt, LaunchRequest


class LaunchActivities:
    """Launch activities, bound to the worker's :class:`LaunchPublisher` and, when given, the
    access registry that records public availability."""

    def __init__(self, publisher: LaunchPublisher, registry: AccessRegistry | None = None) -> None:
        self._publisher = publisher
        self._registry = registry

    @activity.defn(name="publish_launch")
    def publish_launch(self, request: LaunchRequest) -> LaunchReceipt:
        """Publish once per idempotency key; a retry returns the first launch's receipt."""
        with activity_errors():
            request = LaunchRequest.model_validate(request)
            receipt = self._publisher.publish(request)
            if self._registry is not None:
                for surface in dict.fromkeys(request.surfaces):
                    self._registry.record_public_launch(
                        PublicLaunch(
                            release_id=request.release_id,
                            model_name=request.model.name,
                            model_version=request.model.version,
                            surface=surface,
                            launch_id=receipt.launch_id,
                            published_at=receipt.published_at,
                        )
                    )
        activity.logger.info(
            "release %s launched on %s: %s",
            request.release_id,
            ", ".join(request.surfaces),
            receipt.launch_id,
        )
        return receipt

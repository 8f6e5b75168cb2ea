"""``submit_to_government``: submit a release for government testing and return the receipt."""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.clearinghouse import Clearinghouse
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.status import GovernmentReceipt


class GovernmentActivities:
    """Government activities, bound to the worker's :class:`Clearinghouse`."""

    def __init__(self, clearinghouse: Clearinghouse) -> None:
        self._clearinghouse = clearinghouse

    @activity.defn(name="submit_to_government")
    def submit_to_government(self, request: SubmissionRequest) -> GovernmentReceipt:
        """Submit once per idempotency key; a retry returns the receipt issued the first time."""
        with activity_errors():
            request = SubmissionRequest.model_validate(request)
            receipt = self._clearinghouse.submit(request)
        activity.logger.info(
            "release %s submitted to %s: receipt %s",
            request.release_id,
            receipt.clearinghouse,
            receipt.receipt_id,
        )
        return receipt

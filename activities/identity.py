"""The identity activity: a signed request checked against the worker's identity registry.

Update validators read the key directory directly (they never run on replay). A workflow's
*start* has no validator, so the access order's run checks its signed start through this
activity: the answer is pinned in history, and a refusal ends the order before anything is
applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from gatekeeper.identity.authority import KeyDirectory
from gatekeeper.models.orders import SignedRequestCheck
from gatekeeper.rules import Refusal
from gatekeeper.signed_requests import check


class IdentityActivities:
    """Checks of signed requests, bound to the worker's key directory and its unsigned setting."""

    def __init__(self, directory: KeyDirectory, *, unsigned_allowed: bool = False) -> None:
        self._directory = directory
        self._unsigned_allowed = unsigned_allowed

    @activity.defn(name="check_signed_request")
    def check_signed_request(self, request: SignedRequestCheck) -> None:
        """Raise a non-retryable ``ApplicationError`` (type: the rule) unless ``request`` is
        signed as the worker requires (see :func:`gatekeeper.signed_requests.check`)."""
        request = SignedRequestCheck.model_validate(request)
        try:
            check(
                action=request.action,
                request=request.request,
                expected=request.expected,
                directory=self._directory,
                now=datetime.now(UTC),
                max_age=timedelta(seconds=request.max_age_seconds),
                used_nonces=(),
                unsigned_allowed=self._unsigned_allowed,
            )
        except Refusal as refusal:
            raise ApplicationError(
                refusal.message, type=refusal.rule.value, non_retryable=True
            ) from None

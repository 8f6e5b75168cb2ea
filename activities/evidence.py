"""``verify_evidence``: re-hash a release's artifact and evidence and compare with the spec."""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.evidence import EvidenceVerifier
from gatekeeper.models.io import EvidenceCheckRequest, EvidenceCheckResult


class EvidenceActivities:
    """Evidence activities, bound to the worker's :class:`EvidenceVerifier`."""

    def __init__(self, verifier: EvidenceVerifier) -> None:
        self._verifier = verifier

    @activity.defn(name="verify_evidence")
    def verify_evidence(self, request: EvidenceCheckRequest) -> EvidenceCheckResult:
        """One check per item; bad items are reported, not raised (the workflow decides).

        Heartbeats while hashing, so large artifacts can run under a heartbeat timeout.
        """
        with activity_errors():
            request = EvidenceCheckRequest.model_validate(request)
            result = self._verifier.verify(request, progress=activity.heartbeat)
        failures = result.failures
        activity.logger.info(
            "evidence of %s: %d checked, %d failed%s",
            request.release_id,
            len(result.checks),
            len(failures),
            "".join(f"; {c.id} {c.result}" for c in failures),
        )
        return result

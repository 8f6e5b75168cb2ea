"""``record_audit_events``: flush a release's audit events to the audit store, idempotently."""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.audit_store import AuditStore
from gatekeeper.models.io import AuditFlushRequest, AuditFlushResult


class AuditActivities:
    """Audit activities, bound to the worker's :class:`AuditStore`."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    @activity.defn(name="record_audit_events")
    def record_audit_events(self, request: AuditFlushRequest) -> AuditFlushResult:
        """Store the events not stored yet; a conflicting chain fails without retrying."""
        with activity_errors():
            request = AuditFlushRequest.model_validate(request)
            result = self._store.store(request.release_id, request.events)
        activity.logger.info(
            "audit of %s: %d stored, %d already stored",
            request.release_id,
            result.stored,
            result.already_stored,
        )
        return result

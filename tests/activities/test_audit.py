"""record_audit_events stores idempotently and refuses a conflicting chain for good."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities
from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.models.io import AuditFlushRequest, AuditFlushResult
from tests.adapters.builders import RELEASE, chain


class TestRecordAuditEvents:
    """A retried flush stores nothing twice; an altered chain is a final AdapterError."""

    def test_stores_once(self, audit_store: DatabaseAuditStore) -> None:
        acts = AuditActivities(audit_store)
        env = ActivityEnvironment()
        request = AuditFlushRequest(release_id=RELEASE, events=chain(4))

        first = env.run(acts.record_audit_events, request)
        retry = env.run(acts.record_audit_events, request)

        assert isinstance(first, AuditFlushResult)
        assert (first.stored, first.already_stored) == (4, 0)
        assert (retry.stored, retry.already_stored) == (0, 4)
        assert audit_store.read(RELEASE) == chain(4)

    def test_conflicting_chain_fails_for_good(self, audit_store: DatabaseAuditStore) -> None:
        acts = AuditActivities(audit_store)
        env = ActivityEnvironment()
        env.run(acts.record_audit_events, AuditFlushRequest(release_id=RELEASE, events=chain(2)))
        altered = AuditFlushRequest(release_id=RELEASE, events=chain(2, altered=True))

        with pytest.raises(ApplicationError) as caught:
            env.run(acts.record_audit_events, altered)

        assert (caught.value.type, caught.value.non_retryable) == ("AdapterError", True)
        assert "already stored" in caught.value.message

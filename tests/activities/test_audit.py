"""record_audit_events stores idempotently and refuses a conflicting chain for good."""

from __future__ import annotations

import threading
import time

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import audit
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


class TestEachEventSentOnce:
    """Each audit event crosses into a release's history once: a write the workflow scheduled
    while an earlier one was still running carries only the events after it, and if it runs
    first it waits for the earlier write to land, then stores only its own events; a gap that
    never fills is a retryable error, never a refused chain."""

    def test_a_later_write_waits_for_the_earlier_one(self, audit_store: DatabaseAuditStore) -> None:
        acts = AuditActivities(audit_store)
        events = chain(6)
        later = AuditFlushRequest(release_id=RELEASE, events=events[3:])
        landed = threading.Event()

        def earlier() -> None:
            time.sleep(0.3)
            audit_store.store(RELEASE, events[:3])
            landed.set()

        writer = threading.Thread(target=earlier)
        writer.start()
        try:
            result = ActivityEnvironment().run(acts.record_audit_events, later)
        finally:
            writer.join()

        assert landed.is_set()
        assert (result.stored, result.already_stored, result.length) == (3, 0, 6)
        assert audit_store.read(RELEASE) == events

    def test_a_gap_that_never_fills_is_retried(
        self, audit_store: DatabaseAuditStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(audit, "EARLIER_WRITE_WAIT", 0.2)
        acts = AuditActivities(audit_store)
        events = chain(6)
        audit_store.store(RELEASE, events[:2])

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(
                acts.record_audit_events, AuditFlushRequest(release_id=RELEASE, events=events[4:])
            )

        assert (caught.value.type, caught.value.non_retryable) == ("AdapterError", False)
        assert caught.value.message == (
            f"audit events 2–3 of {RELEASE} are not stored yet (the write carrying them has not "
            "landed); retrying"
        )
        assert audit_store.read(RELEASE) == events[:2], "nothing stored past the gap"

"""record_audit_events stores idempotently and refuses a conflicting chain for good."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import audit
from activities.audit import AnchorActivities, AuditActivities
from gatekeeper.adapters.anchors import AnchorStore
from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.audit import AuditChain
from gatekeeper.identity.heads import AnchorRequest
from gatekeeper.models.audit import GENESIS_HASH, AuditEvent
from gatekeeper.models.io import AuditFlushRequest, AuditFlushResult
from tests.adapters.builders import RELEASE, T0, chain


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


def hashed(length: int) -> list[AuditEvent]:
    """``length`` events as a release's chain hashes them (:class:`AuditChain`)."""
    built = AuditChain(RELEASE)
    for seq in range(length):
        built.append(
            at=T0 + timedelta(minutes=seq),
            actor="system",
            action=f"step-{seq}",
            details={"n": seq, "ratio": seq / 7},
        )
    return built.events


class TestEntries:
    """A release under COST_PATCH sends its audit events as entries (no release id, links or
    hashes) after the hash they follow: the activity seals them itself, stores exactly the chain
    the workflow kept, and signs a head only if the entries hash to it."""

    def test_sealed_entries_are_the_chain(self, audit_store: DatabaseAuditStore) -> None:
        events = hashed(5)
        acts = AuditActivities(audit_store)
        env = ActivityEnvironment()
        for part in (events[:2], events[2:]):
            env.run(
                acts.record_audit_events,
                AuditFlushRequest(
                    release_id=RELEASE,
                    entries=[e.entry() for e in part],
                    prev_hash=part[0].prev_hash,
                ),
            )

        assert audit_store.read(RELEASE) == events

    def test_entries_after_another_hash_are_refused(self, audit_store: DatabaseAuditStore) -> None:
        events = hashed(4)
        audit_store.store(RELEASE, events[:2])
        request = AuditFlushRequest(
            release_id=RELEASE, entries=[e.entry() for e in events[2:]], prev_hash="f" * 64
        )

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(AuditActivities(audit_store).record_audit_events, request)

        assert (caught.value.type, caught.value.non_retryable) == ("AdapterError", True)
        assert "does not link to the stored head" in caught.value.message
        assert audit_store.read(RELEASE) == events[:2]

    def test_a_head_the_entries_do_not_hash_to_is_not_signed(
        self, audit_store: DatabaseAuditStore, database_url: str, tmp_path: Path
    ) -> None:
        events = hashed(3)
        altered = [*events[:2], events[2].model_copy(update={"actor": "mallory"})]
        with AnchorStore(database_url) as anchors:
            acts = AnchorActivities(audit_store, anchors, tmp_path / "worker-key.pem")
            request = AnchorRequest(
                release_id=RELEASE,
                first_run_id="run-1",
                entries=[e.entry() for e in altered],
                prev_hash=GENESIS_HASH,
                seq=2,
                hash=events[2].hash,
                reason="stage review completed",
            )
            with pytest.raises(ApplicationError) as caught:
                ActivityEnvironment().run(acts.anchor_audit_head, request)
            assert (caught.value.non_retryable, caught.value.message) == (
                True,
                "the entries sent do not hash to the head",
            )
            assert anchors.anchors(RELEASE) == []
            assert audit_store.read(RELEASE) == []

            signed = ActivityEnvironment().run(
                acts.anchor_audit_head,
                request.model_copy(update={"entries": [e.entry() for e in events]}),
            )
            assert signed.stored_length == 3
            assert [a.head.hash for a in anchors.anchors(RELEASE)] == [events[2].hash]
        assert audit_store.read(RELEASE) == events

"""``record_audit_events``: flush a release's audit events to the audit store, idempotently;
``anchor_audit_head``: sign a release's audit head with the worker's key and anchor it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.anchors import AnchorStore
from gatekeeper.adapters.audit_store import AuditStore
from gatekeeper.audit import sealed
from gatekeeper.errors import AdapterError, ConfigError, InputError
from gatekeeper.identity.heads import AnchorRequest, HeadSignature, load_or_create_key, sign_head
from gatekeeper.models.audit import AuditEntry, AuditEvent
from gatekeeper.models.io import AuditFlushRequest, AuditFlushResult

#: How long a write whose events start past the stored chain waits for the write before it (the
#: workflow sent those events in an activity still running), and how often it looks.
EARLIER_WRITE_WAIT = 10.0
EARLIER_WRITE_POLL = 0.02


def events_sent(
    release_id: str, events: list[AuditEvent], entries: list[AuditEntry], prev_hash: str | None
) -> list[AuditEvent]:
    """The audit events a write carries: ``events`` as sent, or ``entries`` sealed on from
    ``prev_hash`` (issue 16: hashes computed here, from the content, never taken on trust)."""
    if not entries:
        return events
    if events:
        raise InputError("an audit write sends events or entries, not both")
    if prev_hash is None:
        raise InputError("audit entries need the hash of the event before them (prev_hash)")
    try:
        return sealed(release_id, prev_hash, entries)
    except ValueError as err:
        raise InputError(str(err)) from err


def after_earlier_writes(store: AuditStore, release_id: str, events: Sequence[AuditEvent]) -> None:
    """Return once the store holds every event before ``events`` (at once, nearly always).

    Since issue 16 a release sends each audit event once: a write scheduled while an earlier one
    is still running starts where that one ends, so it may reach the store first. It waits here
    for the earlier write to land, then stores only its own events (a retry, as ever, stores
    only what is new). Still a gap after :data:`EARLIER_WRITE_WAIT`: a retryable error (Temporal
    retries the activity; the earlier write is retried too until it lands).
    """
    if not events:
        return
    first = min(e.seq for e in events)
    deadline = time.monotonic() + EARLIER_WRITE_WAIT
    while True:
        length = store.store(release_id, []).length
        if length is None or length >= first:
            return
        if time.monotonic() > deadline:
            raise AdapterError(
                f"audit events {length}–{first - 1} of {release_id} are not stored yet (the "
                "write carrying them has not landed); retrying",
                retryable=True,
            )
        time.sleep(EARLIER_WRITE_POLL)


class AuditActivities:
    """Audit activities, bound to the worker's :class:`AuditStore`."""

    def __init__(self, store: AuditStore) -> None:
        self._store = store

    @activity.defn(name="record_audit_events")
    def record_audit_events(self, request: AuditFlushRequest) -> AuditFlushResult:
        """Store the events not stored yet; a conflicting chain fails without retrying."""
        with activity_errors():
            request = AuditFlushRequest.model_validate(request)
            events = events_sent(
                request.release_id, request.events, request.entries, request.prev_hash
            )
            after_earlier_writes(self._store, request.release_id, events)
            result = self._store.store(request.release_id, events)
        activity.logger.info(
            "audit of %s: %d stored, %d already stored",
            request.release_id,
            result.stored,
            result.already_stored,
        )
        return result


class AnchorActivities:
    """``anchor_audit_head``: the worker's key signs a release's audit head, anchored outside.

    Bound to the audit store (the events not stored yet go there first, as
    ``record_audit_events`` would), the anchor table and the worker's own private key.
    """

    def __init__(self, store: AuditStore, anchors: AnchorStore, worker_key: Path) -> None:
        self._store = store
        self._anchors = anchors
        self._key_path = worker_key
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    def _worker_key(self) -> Ed25519PrivateKey:
        """The worker's key, read (or, on a worker nobody set up, made) on first use."""
        with self._lock:
            if self._key is None:
                try:
                    self._key = load_or_create_key(self._key_path)
                except (OSError, ValueError, TypeError) as err:
                    raise ConfigError(
                        f"[identity] worker_key: cannot use {self._key_path}: {err}"
                    ) from err
            return self._key

    @activity.defn(name="anchor_audit_head")
    def anchor_audit_head(self, request: AnchorRequest) -> HeadSignature:
        """Sign the head at ``request.seq`` and append it to the anchor table, then store the
        events; a chain the audit store already holds differently fails without retrying (after
        the head is anchored, so the fork stays on record)."""
        with activity_errors():
            request = AnchorRequest.model_validate(request)
            if request.entries:
                events = events_sent(request.release_id, [], request.entries, request.prev_hash)
                if events[-1].seq == request.seq and events[-1].hash != request.hash:
                    raise InputError("the entries sent do not hash to the head")
                request = request.model_copy(update={"events": events, "entries": []})
            links = request.all_links()
            if len(links) != request.seq - request.first + 1 or (
                links and not request.hash.startswith(links[-1])
            ):
                raise InputError("the head's links do not end at its hash")
            last = request.events[-1] if request.events else None
            if last is not None and (last.seq, last.hash) != (request.seq, request.hash):
                raise InputError("the head is not the last event sent")
            # Before signing: a head is anchored once per attempt that gets this far.
            after_earlier_writes(self._store, request.release_id, request.events)
            signed = sign_head(
                self._worker_key(),
                release_id=request.release_id,
                first_run_id=request.first_run_id,
                seq=request.seq,
                hash=request.hash,
                reason=request.reason,
                first=request.first,
                links=links,
            )
            anchored = self._anchors.append(signed)
            stored = self._store.store(request.release_id, request.events)
        activity.logger.info(
            "audit head of %s signed at event %d (%s)",
            request.release_id,
            request.seq,
            request.reason,
        )
        return HeadSignature(
            signed_at=anchored.head.signed_at,
            key_id=anchored.head.key_id,
            signature=anchored.signature,
            stored_length=stored.length,
        )

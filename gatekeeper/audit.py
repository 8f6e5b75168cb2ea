"""The audit chain: append events, and prove afterwards that none was altered.

Each event's hash is sha256 over the canonical JSON of all its other fields, including the
previous event's hash. The workflow appends (with ``workflow.now()`` times); ``gatekeeper audit
verify`` recomputes. Pure functions: no I/O, no clocks, safe inside a workflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.canonical import digest_of
from gatekeeper.models.audit import GENESIS_HASH, AuditEntry, AuditEvent


def event_hash(event: AuditEvent) -> str:
    """The hash ``event`` should carry, computed from its other fields."""
    return digest_of(event.body())


def sealed(release_id: str, prev_hash: str, entries: list[AuditEntry]) -> list[AuditEvent]:
    """The audit events ``entries`` stand for: numbered on from the first entry's seq, each
    linked to the one before it (the first to ``prev_hash``) and hashed as the chain hashes.

    Raises:
        ValueError: the entries are not numbered one after another.
    """
    events: list[AuditEvent] = []
    previous = prev_hash
    for index, entry in enumerate(entries):
        if entry.seq != entries[0].seq + index:
            raise ValueError(
                f"audit entry {entry.seq} does not follow entry {entries[0].seq + index - 1}"
            )
        event = AuditEvent.model_validate(
            {
                **entry.model_dump(mode="json"),
                "release_id": release_id,
                "prev_hash": previous,
                "hash": "",
            }
        )
        event.hash = event_hash(event)
        previous = event.hash
        events.append(event)
    return events


class AuditChain:
    """An append-only, hash-chained list of a release's audit events."""

    def __init__(self, release_id: str, events: list[AuditEvent] | None = None) -> None:
        self.release_id = release_id
        self.events: list[AuditEvent] = list(events or [])

    @property
    def head(self) -> str:
        return self.events[-1].hash if self.events else GENESIS_HASH

    def __len__(self) -> int:
        return len(self.events)

    def append(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        stage: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        draft = AuditEvent(
            release_id=self.release_id,
            seq=len(self.events),
            at=at,
            actor=actor,
            action=action,
            stage=stage,
            details=details or {},
            prev_hash=self.head,
            hash="",
        )
        # Normalise through JSON once so the hash is over exactly what will be stored and
        # exported (e.g. enum members and datetimes become their JSON spelling).
        event = AuditEvent.model_validate(draft.model_dump(mode="json"))
        event.hash = event_hash(event)
        self.events.append(event)
        return event


@dataclass(frozen=True)
class ChainCheck:
    """Result of verifying a chain. ``bad_seq`` is the first event that does not verify."""

    ok: bool
    length: int
    head: str
    bad_seq: int | None = None
    reason: str = ""


def verify_chain(events: list[AuditEvent]) -> ChainCheck:
    """Recompute every hash and link; report the first event that does not verify."""
    previous = GENESIS_HASH
    release_id = events[0].release_id if events else ""
    for index, event in enumerate(events):
        if event.seq != index:
            return ChainCheck(
                False, len(events), previous, index, f"expected seq {index}, found {event.seq}"
            )
        if event.release_id != release_id:
            return ChainCheck(
                False, len(events), previous, index, "event belongs to another release"
            )
        if event.prev_hash != previous:
            return ChainCheck(
                False, len(events), previous, index, "prev_hash does not match the event before it"
            )
        expected = event_hash(event)
        if event.hash != expected:
            return ChainCheck(
                False, len(events), previous, index, "hash does not match the event's content"
            )
        previous = event.hash
    return ChainCheck(True, len(events), previous)

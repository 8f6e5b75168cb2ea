"""The audit store: every release's audit chain, in the registry's database.

The workflow keeps the chain and flushes it here, at least once, from whichever worker runs the
activity. Storing is idempotent by sequence number: an event already stored with the same hash is
skipped, so a retried flush (or a flush of the whole chain) adds only what is new. Anything that
would make the stored chain disagree with itself is refused and never retried: the same sequence
number with a different hash, a gap, an event that does not link to the stored head, or another
release's event.

Flushes of one release are serialized (SQLite: one writer at a time; PostgreSQL: a
transaction-scoped advisory lock on the release), so a flush always checks its batch against
everything stored before it: two workers flushing the same chain at once both succeed (one
stores, the other finds the events already stored), and a later batch never sees a gap that an
earlier, still-running flush is about to fill. Each event is also one insert keyed by
``(release_id, seq)`` that exactly one writer wins
(:func:`~gatekeeper.adapters.registry.once.insert_once`): whatever a database does not
serialize, a writer that lost the race to a *different* event for a seq refuses, its whole
flush rolled back. The table
is append-only (the database's triggers refuse updates and deletes, migration 0008).

Before issue 16 a chain was one JSONL file per release (``<data dir>/audit/<release>.jsonl``);
:func:`read_chain_file` reads such a file, which an upgraded worker imports once
(:mod:`gatekeeper.adapters.legacy`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from pydantic import ValidationError

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.once import insert_once
from gatekeeper.adapters.registry.tables import audit_events
from gatekeeper.errors import AdapterError
from gatekeeper.models.audit import GENESIS_HASH, AuditEvent
from gatekeeper.models.io import AuditFlushResult

_RELEASE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


class AuditStore(Protocol):
    """Where audit chains are kept outside the workflow."""

    def store(self, release_id: str, events: Sequence[AuditEvent]) -> AuditFlushResult:
        """Append the events not yet stored; refuse (not retryable) any that disagree."""
        ...

    def read(self, release_id: str) -> list[AuditEvent]:
        """The stored chain of ``release_id``, in sequence order (empty if none)."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DatabaseAuditStore(Database):
    """Audit chains behind the registry's SQLAlchemy URL. Thread-safe; shared by every worker.

    Args:
        url: the registry database (SQLite by default, PostgreSQL for several hosts).
        clock: when events are stamped as stored.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock

    def store(self, release_id: str, events: Sequence[AuditEvent]) -> AuditFlushResult:
        """Store the events of ``release_id`` that are not stored yet, in one transaction.

        Raises:
            AdapterError: not retryable when the batch conflicts with the stored chain (same
                seq with another hash, a gap, a broken link, another release's event);
                ``RegistryError`` (retryable) when the database cannot be reached.
        """
        _check_id(release_id)
        batch = sorted(events, key=lambda e: e.seq)
        for event in batch:
            _check_release(event, release_id)
        stored = new = 0
        with self._write(f"store the audit events of {release_id}") as db:
            _serialize(db, release_id)
            length, head = self._head(db, release_id)
            known = self._hashes(db, release_id, [e.seq for e in batch if e.seq < length])
            now = self._clock()
            for event in batch:
                if event.seq < length:
                    _check_same(event, known.get(event.seq))
                    stored += 1
                    continue
                _check_next(event, length, head)
                if insert_once(db, audit_events, _row(event, now)):
                    new += 1
                else:
                    # A concurrent flush stored this seq between our look and our insert.
                    [theirs] = self._hashes(db, release_id, [event.seq]).values()
                    _check_same(event, theirs)
                    stored += 1
                length, head = event.seq + 1, event.hash
        return AuditFlushResult(stored=new, already_stored=stored, length=length)

    def read(self, release_id: str) -> list[AuditEvent]:
        """The stored chain of ``release_id``, in sequence order.

        Raises:
            AdapterError: (not retryable) ``release_id`` is not a release id, or a stored row is
                not an audit event.
        """
        _check_id(release_id)
        with self._read(f"read the audit events of {release_id}") as db:
            rows = db.execute(
                sa.select(audit_events.c.seq, audit_events.c.event)
                .where(audit_events.c.release_id == release_id)
                .order_by(audit_events.c.seq)
            ).all()
        chain: list[AuditEvent] = []
        for seq, event in rows:
            try:
                chain.append(AuditEvent.model_validate(event))
            except ValidationError as err:
                raise AdapterError(
                    f"stored audit event {seq} of {release_id} is not an audit event "
                    f"({err.error_count()} problem(s))",
                    retryable=False,
                ) from err
        return chain

    def release_ids(self) -> list[str]:
        """Every release with a stored chain."""
        with self._read("list the audit chains") as db:
            rows = db.execute(
                sa.select(audit_events.c.release_id).distinct().order_by(audit_events.c.release_id)
            ).all()
        return [str(r) for (r,) in rows]

    @staticmethod
    def _head(db: sa.Connection, release_id: str) -> tuple[int, str]:
        """The stored chain's length and its head's hash."""
        row = db.execute(
            sa.select(audit_events.c.seq, audit_events.c.hash)
            .where(audit_events.c.release_id == release_id)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        ).first()
        return (0, GENESIS_HASH) if row is None else (int(row[0]) + 1, str(row[1]))

    @staticmethod
    def _hashes(db: sa.Connection, release_id: str, seqs: list[int]) -> dict[int, str]:
        if not seqs:
            return {}
        rows = db.execute(
            sa.select(audit_events.c.seq, audit_events.c.hash).where(
                audit_events.c.release_id == release_id,
                audit_events.c.seq.between(min(seqs), max(seqs)),
            )
        ).all()
        return {int(seq): str(h) for seq, h in rows}


def read_chain_file(path: Path) -> list[AuditEvent]:
    """The events of a pre-database audit-store file (one JSON event per line); a torn last
    line (a crashed write, never acknowledged) is ignored.

    Raises:
        AdapterError: (not retryable) a complete line is not an audit event.
    """
    raw = path.read_bytes()
    events: list[AuditEvent] = []
    complete = raw[: raw.rfind(b"\n") + 1]
    for number, line in enumerate(complete.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(AuditEvent.model_validate_json(line))
        except ValidationError as err:
            raise AdapterError(
                f"{path}:{number} is not an audit event ({err.error_count()} problem(s))",
                retryable=False,
            ) from err
    return events


def _serialize(db: sa.Connection, release_id: str) -> None:
    """On PostgreSQL, hold the release's advisory lock until the transaction ends (SQLite's
    write transactions are serialized already)."""
    if db.dialect.name == "postgresql":
        digest = hashlib.sha256(f"gatekeeper.audit:{release_id}".encode()).digest()
        db.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"),
            {"key": int.from_bytes(digest[:8], "big", signed=True)},
        )


def _row(event: AuditEvent, now: datetime) -> dict[str, object]:
    return {
        "release_id": event.release_id,
        "seq": event.seq,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        "event": event.model_dump(mode="json"),
        "stored_at": now,
    }


def _check_id(release_id: str) -> None:
    if not _RELEASE_ID.fullmatch(release_id):
        raise AdapterError(f"{release_id[:80]!r} is not a release id", retryable=False)


def _check_release(event: AuditEvent, release_id: str) -> None:
    if event.release_id != release_id:
        raise AdapterError(
            f"event {event.seq} belongs to release {event.release_id!r}, not {release_id!r}",
            retryable=False,
        )


def _check_same(event: AuditEvent, stored_hash: str | None) -> None:
    if stored_hash is None:
        raise AdapterError(
            f"audit event {event.seq} of {event.release_id} is missing from the stored chain",
            retryable=False,
        )
    if event.hash != stored_hash:
        raise AdapterError(
            f"audit event {event.seq} of {event.release_id} is already stored with hash "
            f"{stored_hash[:12]}…, not {event.hash[:12]}…: the chain was altered",
            retryable=False,
        )


def _check_next(event: AuditEvent, expected_seq: int, head: str) -> None:
    if event.seq != expected_seq:
        raise AdapterError(
            f"audit event {event.seq} of {event.release_id} leaves a gap: the store holds "
            f"events up to {expected_seq - 1}",
            retryable=False,
        )
    if event.prev_hash != head:
        raise AdapterError(
            f"audit event {event.seq} of {event.release_id} does not link to the stored head "
            f"{head[:12]}…",
            retryable=False,
        )

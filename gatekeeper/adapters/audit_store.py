"""The audit store, embedded default: one append-only JSONL file per release.

The workflow keeps the chain and flushes it here, at least once. Storing is idempotent by
sequence number: an event already stored with the same hash is skipped, so a retried flush (or a
flush of the whole chain) appends only what is new. Anything that would make the stored chain
disagree with itself is refused and never retried: the same sequence number with a different
hash, a gap, or an event that does not link to the stored head.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

import structlog
from pydantic import ValidationError

from gatekeeper.adapters.locking import locked
from gatekeeper.errors import AdapterError
from gatekeeper.models.audit import GENESIS_HASH, AuditEvent
from gatekeeper.models.io import AuditFlushResult

_RELEASE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_log = structlog.get_logger(__name__)


class AuditStore(Protocol):
    """Where audit chains are kept outside the workflow."""

    def store(self, release_id: str, events: Sequence[AuditEvent]) -> AuditFlushResult:
        """Append the events not yet stored; refuse (not retryable) any that disagree."""
        ...

    def read(self, release_id: str) -> list[AuditEvent]:
        """The stored chain of ``release_id``, in sequence order (empty if none)."""
        ...


class JsonlAuditStore:
    """``<dir>/<release_id>.jsonl``, one event per line. Safe across threads and processes.

    Args:
        directory: where the files live; created on first store.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._lock = threading.Lock()

    def store(self, release_id: str, events: Sequence[AuditEvent]) -> AuditFlushResult:
        """Append the events of ``release_id`` that are not stored yet, durably.

        Raises:
            AdapterError: not retryable when the batch conflicts with the stored chain (same
                seq with another hash, a gap, a broken link, another release's event);
                retryable when the file cannot be written.
        """
        path = self._path(release_id)
        stored = new = 0
        try:
            with self._lock, _locked(path) as handle:
                chain = _parse(path, handle.read())
                head = chain[-1].hash if chain else GENESIS_HASH
                lines: list[bytes] = []
                for event in sorted(events, key=lambda e: e.seq):
                    _check_release(event, release_id)
                    if event.seq < len(chain):
                        _check_same(event, chain[event.seq])
                        stored += 1
                        continue
                    _check_next(event, len(chain), head)
                    chain.append(event)
                    head = event.hash
                    lines.append(event.model_dump_json().encode("utf-8") + b"\n")
                    new += 1
                if lines:
                    handle.write(b"".join(lines))
                    handle.flush()
                    os.fsync(handle.fileno())
        except OSError as err:
            raise AdapterError(f"cannot write the audit store {path}: {err}") from err
        return AuditFlushResult(stored=new, already_stored=stored, length=len(chain))

    def read(self, release_id: str) -> list[AuditEvent]:
        """The stored chain of ``release_id``; a torn last line (a crashed write) is ignored.

        Raises:
            AdapterError: (not retryable) a stored line is not an audit event.
        """
        path = self._path(release_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        return _parse(path, raw)

    def _path(self, release_id: str) -> Path:
        # The release id names the file, so it must be an identifier and nothing else.
        if not _RELEASE_ID.fullmatch(release_id):
            raise AdapterError(f"{release_id!r} is not a release id", retryable=False)
        return self._directory / f"{release_id}.jsonl"


@contextmanager
def _locked(path: Path) -> Iterator[IO[bytes]]:
    """The file opened for reading and appending, under an exclusive ``flock``.

    A torn last line (a writer that died mid-write, so never acknowledged) is cut off first, so
    the next event starts on a line of its own.
    """
    with locked(path) as handle:
        handle.seek(0)
        raw = handle.read()
        end = raw.rfind(b"\n") + 1
        if end < len(raw):
            _log.warning("audit_store.torn_line_dropped", path=str(path), bytes=len(raw) - end)
            handle.truncate(end)
        handle.seek(0)
        yield handle


def _parse(path: Path, raw: bytes) -> list[AuditEvent]:
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


def _check_release(event: AuditEvent, release_id: str) -> None:
    if event.release_id != release_id:
        raise AdapterError(
            f"event {event.seq} belongs to release {event.release_id!r}, not {release_id!r}",
            retryable=False,
        )


def _check_same(event: AuditEvent, stored: AuditEvent) -> None:
    if event.hash != stored.hash:
        raise AdapterError(
            f"audit event {event.seq} of {event.release_id} is already stored with hash "
            f"{stored.hash[:12]}…, not {event.hash[:12]}…: the chain was altered",
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

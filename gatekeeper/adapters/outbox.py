"""The outbox: an append-only JSONL journal of deliveries, deduplicated on a business key.

Activities run at least once, and several workers may share one outbox file, so "was this key
already delivered?" and "record it" must be one step for every thread and every process. Each
append takes an exclusive ``fcntl`` lock on the file, reads only the lines other writers added
since this instance last looked, and writes its line only if the key is new. A 5,000-recipient
fan-out therefore costs 5,000 small appends, never 5,000 scans of the file.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from gatekeeper.adapters.locking import locked
from gatekeeper.errors import DeliveryError

_log = structlog.get_logger(__name__)


class Outbox:
    """A JSONL file with one line per delivered key; safe across threads and processes.

    Every line is a JSON object with at least ``key`` and ``written_at``; the rest is the record
    the caller gave (the notifier stores the notification, the recipient and the channel).

    Args:
        path: the JSONL file; it and its directory are created on first append.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._keys: set[str] = set()
        self._offset = 0  # bytes of the file already folded into ``_keys``
        self._torn = False  # the file ends in a fragment a dead writer left behind

    @property
    def path(self) -> Path:
        return self._path

    def append(self, key: str, record: Mapping[str, Any]) -> bool:
        """Record ``key`` with ``record`` unless some writer already recorded it.

        Returns:
            True if this call wrote the line, False if the key was already in the file.

        Raises:
            DeliveryError: (retryable) the file could not be read or written.
        """
        if "key" in record or "written_at" in record:
            raise ValueError("record must not carry 'key' or 'written_at'; the outbox sets them")
        line = {"key": key, "written_at": datetime.now(UTC).isoformat(), **record}
        data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            with self._lock, locked(self._path) as handle:
                self._catch_up(handle)
                if key in self._keys:
                    return False
                if self._torn:
                    # A writer died mid-line; end that fragment so ours starts on a fresh line.
                    data = b"\n" + data
                handle.write(data + b"\n")
                handle.flush()
                self._offset += len(data) + 1
                self._torn = False
                self._keys.add(key)
                return True
        except OSError as err:
            raise DeliveryError(f"cannot append to outbox {self._path}: {err}") from err

    def contains(self, key: str) -> bool:
        """Whether any writer has recorded ``key`` (reads what others appended meanwhile).

        Raises:
            DeliveryError: (retryable) the file could not be read.
        """
        try:
            with self._lock, locked(self._path) as handle:
                self._catch_up(handle)
                return key in self._keys
        except OSError as err:
            raise DeliveryError(f"cannot read outbox {self._path}: {err}") from err

    def read(self) -> list[dict[str, Any]]:
        """Every well-formed line of the file, oldest first."""
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return []
        return [rec for rec in map(_parse, raw.split(b"\n")) if rec is not None]

    def sync(self) -> None:
        """Make everything appended so far durable (``fsync``); called once per dispatch.

        Appends are flushed to the operating system at once, so other processes see them and a
        crashed worker loses nothing; only an OS crash can lose lines that were not synced, and
        then the retried activity delivers exactly those lines again.
        """
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _catch_up(self, handle: IO[bytes]) -> None:
        """Fold the lines appended since ``_offset`` into ``_keys``."""
        size = os.fstat(handle.fileno()).st_size
        if size < self._offset:
            # The file was replaced or truncated behind our back: start over from its beginning.
            self._keys.clear()
            self._offset = 0
            self._torn = False
        if size == self._offset:
            return
        handle.seek(self._offset)
        chunk = handle.read(size - self._offset)
        end = chunk.rfind(b"\n") + 1
        for raw in chunk[:end].split(b"\n"):
            record = _parse(raw)
            if record is not None:
                self._keys.add(str(record["key"]))
        # Writers append whole lines under the lock, so a fragment at the end can only be what a
        # dead writer left; it is skipped (never parsed again) and the next append ends it.
        self._torn = end < len(chunk)
        self._offset = size


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        _log.warning("outbox.malformed_line", line=raw[:200].decode("utf-8", "replace"))
        return None
    if not isinstance(record, dict) or "key" not in record:
        _log.warning("outbox.line_without_key", line=raw[:200].decode("utf-8", "replace"))
        return None
    return record

"""The outbox file: one human-readable JSON line per delivery this worker made.

Which deliveries happened, exactly once across every worker and host, is the database's send
journal (:mod:`gatekeeper.adapters.deliveries`); this file is a mirror for people and scripts on
the worker's machine (``tail -f <data dir>/outbox.jsonl``), and the ``outbox`` channel's
destination. A line is appended after the journal recorded the delivery, so a key appears at
most once in the file of the worker that delivered it; a worker dying between the two loses
that one line, never the delivery. Nothing reads the file to decide whether to deliver.

Appends take an exclusive ``fcntl`` lock, so the lines of several processes sharing a data
directory never interleave.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from gatekeeper.adapters.locking import locked
from gatekeeper.errors import DeliveryError

_log = structlog.get_logger(__name__)

#: The file's name under the data directory.
OUTBOX_FILE = "outbox.jsonl"
#: Send claims before the database kept them (imported once, see :mod:`gatekeeper.adapters.legacy`).
SENDING_FILE = "outbox.sending.jsonl"


class Outbox:
    """An append-only JSONL file, one line per delivery; safe across threads and processes.

    Every line is a JSON object with ``key`` and ``written_at`` and the record the journal
    stored (notification, recipient, channel, channel type).

    Args:
        path: the JSONL file; it and its directory are created on first append.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def append(self, key: str, record: Mapping[str, Any]) -> None:
        """Append the line of ``key``.

        Raises:
            DeliveryError: (retryable) the file could not be written.
        """
        self.append_many([(key, record)])

    def append_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Append one line per ``(key, record)``, in order, in one write.

        Raises:
            DeliveryError: (retryable) the file could not be written.
        """
        if not items:
            return
        written_at = datetime.now(UTC).isoformat()
        lines: list[bytes] = []
        for key, record in items:
            if "key" in record or "written_at" in record:
                raise ValueError(
                    "record must not carry 'key' or 'written_at'; the outbox sets them"
                )
            line = {"key": key, "written_at": written_at, **record}
            lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode())
        data = b"\n".join(lines)
        try:
            with self._lock, locked(self._path) as handle:
                size = os.fstat(handle.fileno()).st_size
                if size:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":
                        # A writer died mid-line; end that fragment so ours starts on a fresh line.
                        data = b"\n" + data
                handle.write(data + b"\n")
                handle.flush()
        except OSError as err:
            raise DeliveryError(f"cannot append to outbox {self._path}: {err}") from err

    def read(self) -> list[dict[str, Any]]:
        """Every well-formed line of the file, oldest first."""
        return read_lines(self._path)

    def sync(self) -> None:
        """Make everything appended so far durable (``fsync``); called once per dispatch."""
        try:
            fd = os.open(self._path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """Every well-formed line (a JSON object with a ``key``) of an outbox-shaped file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    return [rec for rec in map(_parse, raw.split(b"\n")) if rec is not None]


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

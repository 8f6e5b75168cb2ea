"""The government clearinghouse, embedded default: a file drop that issues receipts.

``<dir>/submissions/<key>.json`` holds what was submitted and ``<dir>/receipts/<key>.json`` the
receipt. The first receipt written for a key is the only one: a retried or concurrent submission
with the same key gets that receipt back unchanged, whichever worker wrote it.

The small file primitives here (:func:`drop_filename`, :func:`write_replacing`,
:func:`write_once`) are shared with the launch file drop.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from gatekeeper.errors import ClearinghouseError
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.status import GovernmentReceipt

Clock = Callable[[], datetime]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+@-]{0,150}")


class Clearinghouse(Protocol):
    """Where a release is submitted for government testing."""

    def submit(self, request: SubmissionRequest) -> GovernmentReceipt:
        """Submit once per ``request.idempotency_key`` and return the receipt.

        Raises:
            ClearinghouseError: with ``retryable`` saying whether trying again can help.
        """
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FileDropClearinghouse:
    """Submissions and receipts as JSON files under one directory. Safe across processes.

    Args:
        directory: the drop directory; ``submissions/`` and ``receipts/`` are created in it.
        name: the clearinghouse name written on receipts.
        clock: the time receipts are stamped with.
    """

    def __init__(self, directory: Path, name: str = "file-drop", clock: Clock = _utcnow) -> None:
        self._directory = Path(directory)
        self._name = name
        self._clock = clock

    def submit(self, request: SubmissionRequest) -> GovernmentReceipt:
        """Drop the submission and issue its receipt, or return the receipt issued before."""
        filename = drop_filename(request.idempotency_key)
        submission = self._directory / "submissions" / filename
        receipt_path = self._directory / "receipts" / filename
        try:
            existing = _read_receipt(receipt_path)
            if existing is not None:
                return existing
            write_replacing(submission, request.model_dump_json(indent=2).encode("utf-8"))
            receipt = GovernmentReceipt(
                receipt_id=f"GOV-{uuid.uuid4().hex[:12]}",
                clearinghouse=self._name,
                received_at=self._clock(),
                location=str(submission),
            )
            if write_once(receipt_path, receipt.model_dump_json(indent=2).encode("utf-8")):
                return receipt
            # Another worker issued the receipt between our look and our write: theirs stands.
            stored = _read_receipt(receipt_path)
        except OSError as err:
            raise ClearinghouseError(f"cannot write to the clearinghouse drop: {err}") from err
        if stored is None:
            raise ClearinghouseError(f"receipt {receipt_path} vanished")
        return stored


def _read_receipt(path: Path) -> GovernmentReceipt | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return GovernmentReceipt.model_validate_json(raw)
    except ValidationError as err:
        raise ClearinghouseError(
            f"stored receipt {path} is corrupt: {err.error_count()} problem(s)", retryable=False
        ) from err


def drop_filename(key: str, suffix: str = ".json") -> str:
    """A file name for an idempotency key: the key itself when it is safe, else its digest.

    Keys are made by the workflow (``<release>:<stage>:<action>:<seq>``) and are safe as they
    are; anything with a slash, a leading dot or an odd character is named by its sha256
    instead, so no key can escape the drop directory.
    """
    if _SAFE_NAME.fullmatch(key):
        return key + suffix
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest() + suffix


def write_replacing(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then ``os.replace``), durably."""
    tmp = _write_temp(path, data)
    try:
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def write_once(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` atomically unless it exists; True if this call created it.

    The temp file is hard-linked into place, which fails if ``path`` exists: the first writer
    wins, even across processes, and nobody ever sees a half-written file.
    """
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def _write_temp(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The launch publisher, embedded default: a file drop announcing the public launch.

``<dir>/<key>.json`` records what was launched, where and when. The first record for a key is the
only one: a retried or concurrent publish with the same key returns that launch unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from gatekeeper.adapters.clearinghouse import drop_filename, write_once
from gatekeeper.errors import AdapterError
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.enums import Surface
from gatekeeper.models.io import LaunchReceipt, LaunchRequest
from gatekeeper.models.spec import Artifact, ModelRef


class LaunchPublisher(Protocol):
    """Where a public launch is published."""

    def publish(self, request: LaunchRequest) -> LaunchReceipt:
        """Publish once per ``request.idempotency_key`` and return the receipt.

        Raises:
            AdapterError: with ``retryable`` saying whether trying again can help.
        """
        ...


class PublishedLaunch(Model):
    """What the file drop holds for one launch."""

    launch_id: str
    published_at: datetime
    idempotency_key: str
    release_id: Identifier
    model: ModelRef
    artifact: Artifact
    surfaces: list[Surface]
    approved_by: list[Identifier]
    requested_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FileDropLaunchPublisher:
    """Launch records as JSON files in one directory. Safe across processes.

    Args:
        directory: the drop directory, created on first publish.
        clock: the time launches are stamped with.
    """

    def __init__(self, directory: Path, clock: Callable[[], datetime] = _utcnow) -> None:
        self._directory = Path(directory)
        self._clock = clock

    def publish(self, request: LaunchRequest) -> LaunchReceipt:
        """Write the launch record, or return the launch recorded before under the same key."""
        path = self._directory / drop_filename(request.idempotency_key)
        try:
            stored = _read(path)
            if stored is None:
                record = PublishedLaunch(
                    launch_id=f"LAUNCH-{uuid.uuid4().hex[:12]}",
                    published_at=self._clock(),
                    idempotency_key=request.idempotency_key,
                    release_id=request.release_id,
                    model=request.model,
                    artifact=request.artifact,
                    surfaces=request.surfaces,
                    approved_by=request.approved_by,
                    requested_at=request.requested_at,
                )
                written = write_once(path, record.model_dump_json(indent=2).encode("utf-8"))
                # If another worker published between our look and our write, theirs stands.
                stored = record if written else _read(path)
        except OSError as err:
            raise AdapterError(f"cannot write the launch record {path}: {err}") from err
        if stored is None:
            raise AdapterError(f"launch record {path} vanished")
        return LaunchReceipt(
            launch_id=stored.launch_id, published_at=stored.published_at, location=str(path)
        )


def _read(path: Path) -> PublishedLaunch | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return PublishedLaunch.model_validate_json(raw)
    except ValidationError as err:
        raise AdapterError(
            f"stored launch record {path} is corrupt: {err.error_count()} problem(s)",
            retryable=False,
        ) from err

"""The launch publisher, embedded default: launch records in the registry's database.

Each launch is one row of ``launches``, keyed by its idempotency key: what was launched, where
and when. The first record for a key is the only one: a retried or concurrent publish with the
same key, from any worker on any host, returns that launch unchanged (the row is one insert that
exactly one writer wins).

Before issue 16 the records were files (``<data dir>/launches/<key>.json``); an upgraded worker
imports them once (:mod:`gatekeeper.adapters.legacy`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from pydantic import ValidationError

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.once import insert_once
from gatekeeper.adapters.registry.tables import launches
from gatekeeper.errors import AdapterError
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.enums import Surface
from gatekeeper.models.io import LaunchReceipt, LaunchRequest
from gatekeeper.models.spec import Artifact, ModelRef

#: Where a launch receipt says its record is kept: the table and the launch's key.
LOCATION_PREFIX = "launches:"


class LaunchPublisher(Protocol):
    """Where a public launch is published."""

    def publish(self, request: LaunchRequest) -> LaunchReceipt:
        """Publish once per ``request.idempotency_key`` and return the receipt.

        Raises:
            AdapterError: with ``retryable`` saying whether trying again can help.
        """
        ...


class PublishedLaunch(Model):
    """What the launch publisher holds for one launch."""

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


class DatabaseLaunchPublisher(Database):
    """Launch records in the registry's database. Thread-safe; shared by every worker.

    Args:
        url: the registry database (SQLite by default, PostgreSQL for several hosts).
        clock: the time launches are stamped with.
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

    def publish(self, request: LaunchRequest) -> LaunchReceipt:
        """Store the launch record, or return the launch recorded before under the same key."""
        key = request.idempotency_key
        stored = self.launch(key)
        if stored is None:
            record = PublishedLaunch(
                launch_id=f"LAUNCH-{uuid.uuid4().hex[:12]}",
                published_at=self._clock(),
                idempotency_key=key,
                release_id=request.release_id,
                model=request.model,
                artifact=request.artifact,
                surfaces=request.surfaces,
                approved_by=request.approved_by,
                requested_at=request.requested_at,
            )
            # If another worker published between our look and our insert, theirs stands.
            stored = record if self.import_launch(record) else self.launch(key)
        if stored is None:
            raise AdapterError(f"the launch record of {key} vanished")
        return LaunchReceipt(
            launch_id=stored.launch_id,
            published_at=stored.published_at,
            location=f"{LOCATION_PREFIX}{key}",
        )

    def launch(self, key: str) -> PublishedLaunch | None:
        """The launch recorded under ``key``, or None."""
        with self._read(f"read the launch record of {key}") as db:
            row = db.execute(
                sa.select(launches.c.record).where(launches.c.idempotency_key == key)
            ).first()
        if row is None:
            return None
        try:
            return PublishedLaunch.model_validate(row[0])
        except ValidationError as err:
            raise AdapterError(
                f"stored launch record of {key} is corrupt: {err.error_count()} problem(s)",
                retryable=False,
            ) from err

    def launches_of(self, release_id: str) -> list[PublishedLaunch]:
        """Every launch recorded for ``release_id``, oldest first."""
        with self._read(f"read the launches of {release_id}") as db:
            rows = db.execute(
                sa.select(launches.c.record)
                .where(launches.c.release_id == release_id)
                .order_by(launches.c.published_at)
            ).all()
        return [PublishedLaunch.model_validate(r) for (r,) in rows]

    def import_launch(self, record: PublishedLaunch) -> bool:
        """Store ``record`` unless its key has one; True if this call stored it."""
        with self._write(f"store the launch record of {record.idempotency_key}") as db:
            return insert_once(
                db,
                launches,
                {
                    "idempotency_key": record.idempotency_key,
                    "release_id": record.release_id,
                    "launch_id": record.launch_id,
                    "published_at": record.published_at,
                    "record": record.model_dump(mode="json"),
                },
            )

"""The government clearinghouse, embedded default: receipts issued from the registry's database.

Each submission is one row of ``clearinghouse_receipts``, keyed by its idempotency key: what was
submitted and the receipt issued for it. The first receipt stored for a key is the only one: a
retried or concurrent submission with the same key, from any worker on any host, gets that
receipt back unchanged (the row is one insert that exactly one writer wins).

Before issue 16 the drop was files (``<data dir>/clearinghouse/{submissions,receipts}/``); an
upgraded worker imports them once (:mod:`gatekeeper.adapters.legacy`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import ValidationError

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.once import insert_once
from gatekeeper.adapters.registry.tables import clearinghouse_receipts
from gatekeeper.errors import ClearinghouseError
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.status import GovernmentReceipt

Clock = Callable[[], datetime]

#: Where a receipt says its submission is kept: the table and the submission's key.
LOCATION_PREFIX = "clearinghouse_receipts:"


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


class DatabaseClearinghouse(Database):
    """Submissions and their receipts in the registry's database. Thread-safe; shared by every
    worker.

    Args:
        url: the registry database (SQLite by default, PostgreSQL for several hosts).
        name: the clearinghouse name written on receipts.
        clock: the time receipts are stamped with.
    """

    def __init__(
        self,
        url: str,
        name: str = "embedded",
        *,
        clock: Clock = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._name = name
        self._clock = clock

    def submit(self, request: SubmissionRequest) -> GovernmentReceipt:
        """Store the submission and issue its receipt, or return the receipt issued before."""
        key = request.idempotency_key
        existing = self.receipt(key)
        if existing is not None:
            return existing
        receipt = GovernmentReceipt(
            receipt_id=f"GOV-{uuid.uuid4().hex[:12]}",
            clearinghouse=self._name,
            received_at=self._clock(),
            location=f"{LOCATION_PREFIX}{key}",
        )
        if self.import_receipt(key, request.release_id, request.model_dump(mode="json"), receipt):
            return receipt
        # Another worker issued the receipt between our look and our insert: theirs stands.
        stored = self.receipt(key)
        if stored is None:
            raise ClearinghouseError(f"the receipt of {key} vanished")
        return stored

    def receipt(self, key: str) -> GovernmentReceipt | None:
        """The receipt issued for ``key``, or None."""
        with self._read(f"read the clearinghouse receipt of {key}") as db:
            row = db.execute(
                sa.select(clearinghouse_receipts.c.receipt).where(
                    clearinghouse_receipts.c.idempotency_key == key
                )
            ).first()
        if row is None:
            return None
        try:
            return GovernmentReceipt.model_validate(row[0])
        except ValidationError as err:
            raise ClearinghouseError(
                f"stored receipt of {key} is corrupt: {err.error_count()} problem(s)",
                retryable=False,
            ) from err

    def import_receipt(
        self, key: str, release_id: str, submission: dict[str, Any], receipt: GovernmentReceipt
    ) -> bool:
        """Store ``receipt`` for ``key`` unless one is stored; True if this call stored it."""
        with self._write(f"store the clearinghouse receipt of {key}") as db:
            return insert_once(
                db,
                clearinghouse_receipts,
                {
                    "idempotency_key": key,
                    "release_id": release_id,
                    "receipt_id": receipt.receipt_id,
                    "clearinghouse": receipt.clearinghouse,
                    "received_at": receipt.received_at,
                    "submission": submission,
                    "receipt": receipt.model_dump(mode="json"),
                },
            )

    def receipts(self, release_id: str) -> list[GovernmentReceipt]:
        """Every receipt issued for ``release_id``'s submissions, oldest first."""
        with self._read(f"read the clearinghouse receipts of {release_id}") as db:
            rows = db.execute(
                sa.select(clearinghouse_receipts.c.receipt)
                .where(clearinghouse_receipts.c.release_id == release_id)
                .order_by(clearinghouse_receipts.c.received_at)
            ).all()
        return [GovernmentReceipt.model_validate(r) for (r,) in rows]

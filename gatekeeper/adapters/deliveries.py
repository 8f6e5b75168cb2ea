"""The send journal: every delivery of every worker, one row per delivery key, in the database.

Activities run at least once, and workers on several hosts deliver the same releases, so "was
this key already delivered?" and "record it" must be one step for every thread, process and
host. The key is the ``deliveries`` table's primary key: *claiming* a key (an attempt is about to
send it) and *recording* it (the channel accepted it) are each one statement that exactly one
writer wins (:func:`~gatekeeper.adapters.registry.once.insert_once`, and an update of a claim
that has not been recorded yet).

A row with ``delivered_at`` unset is a claim only: an attempt began to send and may have reached
the far side. A recorded row carries what was delivered (the notification, the recipient, the
channel), which the dossier lists (:meth:`DeliveryStore.lines`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.once import insert_once
from gatekeeper.adapters.registry.tables import deliveries

#: A key's release: the workflow makes every key ``<release>:...`` (release ids hold no ``:``).
_ID_LENGTH = 64
#: Deliveries recorded (or looked up) per statement in a batch.
BATCH = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


def release_of(key: str) -> str:
    """The release a delivery key belongs to (the part before its first ``:``)."""
    return key.split(":", 1)[0][:_ID_LENGTH]


class DeliveryStore(Database):
    """Delivery claims and records behind the registry's SQLAlchemy URL. Thread-safe.

    Args:
        url: the registry database (SQLite by default, PostgreSQL for several hosts).
        clock: when claims and deliveries are stamped.
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

    def delivered(self, key: str) -> bool:
        """Whether some worker recorded ``key`` as delivered."""
        with self._read(f"look up delivery {key}") as db:
            found = db.execute(
                sa.select(deliveries.c.delivered_at).where(deliveries.c.key == key)
            ).first()
        return found is not None and found[0] is not None

    def claim(self, key: str, *, channel: str, channel_type: str) -> bool:
        """Record that ``key`` is about to be sent; False if some attempt claimed (or
        delivered) it before, so the far side may already have it."""
        with self._write(f"claim delivery {key}") as db:
            return insert_once(
                db,
                deliveries,
                {
                    "key": key,
                    "release_id": release_of(key),
                    "channel": channel,
                    "channel_type": channel_type,
                    "claimed_at": self._clock(),
                    "delivered_at": None,
                    "record": None,
                },
            )

    def record(self, key: str, record: Mapping[str, Any]) -> bool:
        """Record ``key`` as delivered with ``record`` (its ``channel`` and ``channel_type`` and
        what was delivered); False, and nothing changed, if some writer recorded it before.

        A claim of the key (this attempt's or an earlier one's) becomes the delivery; without a
        claim the record is inserted. Either way exactly one writer sees True.
        """
        if "key" in record or "written_at" in record:
            raise ValueError("record must not carry 'key' or 'written_at'; the journal sets them")
        now = self._clock()
        body = dict(record)
        with self._write(f"record delivery {key}") as db:
            if insert_once(db, deliveries, _delivered_row(key, body, now)):
                return True
            updated = db.execute(
                sa.update(deliveries)
                .where(deliveries.c.key == key, deliveries.c.delivered_at.is_(None))
                .values(delivered_at=now, record=body)
            ).rowcount
            return bool(updated)

    def delivered_among(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` some worker recorded as delivered (one query per
        :data:`BATCH` keys)."""
        found: set[str] = set()
        with self._read("look up deliveries") as db:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                found.update(
                    str(k)
                    for (k,) in db.execute(
                        sa.select(deliveries.c.key).where(
                            deliveries.c.key.in_(chunk), deliveries.c.delivered_at.is_not(None)
                        )
                    )
                )
        return found

    def record_many(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> set[str]:
        """Record each ``(key, record)`` as :meth:`record` does, in one transaction per
        :data:`BATCH` items; the keys this call recorded (exactly one writer records each).

        A fan-out to thousands of recipients costs a few statements per hundred deliveries,
        not a transaction each.
        """
        for _, record in items:
            if "key" in record or "written_at" in record:
                raise ValueError("a record must not carry 'key' or 'written_at'")
        won: set[str] = set()
        for chunk in _chunks(list(dict(items).items())):
            with self._write(f"record {len(chunk)} deliveries") as db:
                won |= self._record_chunk(db, chunk)
        return won

    def _record_chunk(
        self, db: sa.Connection, chunk: list[tuple[str, Mapping[str, Any]]]
    ) -> set[str]:
        now = self._clock()
        if db.dialect.name not in ("sqlite", "postgresql"):
            won: set[str] = set()
            for key, record in chunk:
                body = dict(record)
                updated = db.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.key == key, deliveries.c.delivered_at.is_(None))
                    .values(delivered_at=now, record=body)
                ).rowcount
                if updated or insert_once(db, deliveries, _delivered_row(key, body, now)):
                    won.add(key)
            return won
        insert = (sqlite.insert if db.dialect.name == "sqlite" else postgresql.insert)(deliveries)
        # In key order: concurrent batches then take their row locks in one order (no deadlock).
        rows = [_delivered_row(key, dict(record), now) for key, record in sorted(chunk)]
        # One statement for the batch ("insertmanyvalues"): RETURNING names the rows that went in.
        statement = insert.on_conflict_do_nothing().returning(deliveries.c.key)
        won = {str(k) for (k,) in db.execute(statement, rows)}
        rest = [key for key, _ in chunk if key not in won]
        if rest:
            # Keys someone claimed (an attempt began to send) but did not record: recording
            # them completes the claim.
            claimed = {
                str(k)
                for (k,) in db.execute(
                    sa.select(deliveries.c.key).where(
                        deliveries.c.key.in_(rest), deliveries.c.delivered_at.is_(None)
                    )
                )
            }
            records = dict(chunk)
            for key in claimed:
                updated = db.execute(
                    sa.update(deliveries)
                    .where(deliveries.c.key == key, deliveries.c.delivered_at.is_(None))
                    .values(delivered_at=now, record=dict(records[key]))
                ).rowcount
                if updated:
                    won.add(key)
        return won

    def lines(self, release_id: str | None = None) -> list[dict[str, Any]]:
        """Recorded deliveries (of ``release_id``, or all), oldest first, each shaped as an
        outbox line: ``key``, ``written_at`` (when it was delivered) and the record."""
        query = sa.select(deliveries.c.key, deliveries.c.delivered_at, deliveries.c.record).where(
            deliveries.c.delivered_at.is_not(None)
        )
        if release_id is not None:
            query = query.where(deliveries.c.release_id == release_id)
        with self._read("read the deliveries") as db:
            rows = db.execute(query.order_by(deliveries.c.delivered_at, deliveries.c.key)).all()
        return [
            {"key": key, "written_at": at.isoformat(), **(record or {})} for key, at, record in rows
        ]

    def claims(self, release_id: str | None = None) -> list[str]:
        """Keys claimed but never recorded as delivered (sends that may or may not have
        arrived), oldest first."""
        query = sa.select(deliveries.c.key).where(deliveries.c.delivered_at.is_(None))
        if release_id is not None:
            query = query.where(deliveries.c.release_id == release_id)
        with self._read("read the delivery claims") as db:
            return [str(k) for (k,) in db.execute(query.order_by(deliveries.c.claimed_at)).all()]

    def import_lines(self, lines: Iterable[Mapping[str, Any]], *, delivered: bool) -> int:
        """Import the lines of a pre-database outbox (``delivered``) or send-claim file, in one
        transaction; how many keys were new. A line's ``written_at`` is kept; a key already
        delivered is left alone, a claim becomes the delivery a later line records."""
        count = 0
        with self._write("import the outbox") as db:
            for line in lines:
                key = str(line["key"])[:400]
                body = {k: v for k, v in line.items() if k not in ("key", "written_at")}
                at = _parse_time(line.get("written_at")) or self._clock()
                if delivered:
                    updated = db.execute(
                        sa.update(deliveries)
                        .where(deliveries.c.key == key, deliveries.c.delivered_at.is_(None))
                        .values(delivered_at=at, record=body)
                    ).rowcount
                    if updated:
                        count += 1
                        continue
                count += insert_once(
                    db,
                    deliveries,
                    {
                        "key": key,
                        "release_id": _release(key, body),
                        "channel": str(body.get("channel", ""))[:_ID_LENGTH],
                        "channel_type": str(body.get("channel_type", ""))[:32],
                        "claimed_at": at,
                        "delivered_at": at if delivered else None,
                        "record": body if delivered else None,
                    },
                )
        return count


def _delivered_row(key: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "release_id": _release(key, body),
        "channel": str(body.get("channel", ""))[:_ID_LENGTH],
        "channel_type": str(body.get("channel_type", ""))[:32],
        "claimed_at": now,
        "delivered_at": now,
        "record": body,
    }


T = TypeVar("T")


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def _release(key: str, record: Mapping[str, Any]) -> str:
    notification = record.get("notification")
    if isinstance(notification, Mapping):
        found = notification.get("release_id")
        if isinstance(found, str) and found:
            return found[:_ID_LENGTH]
    return release_of(key)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

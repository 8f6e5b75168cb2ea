"""The anchor table: every audit head a worker signed, append-only, outside the workflow.

A release's audit chain lives in its workflow history, which an operator with namespace rights
can rewrite (``temporal workflow reset`` replays a release up to an event and lets it run on
differently). What a worker signed and wrote here cannot be taken back: rows are only inserted
(the database's triggers refuse updates and deletes), so a reset release's new chain disagrees
with a head anchored before the reset, and ``gatekeeper audit verify`` names the fork.

Writing the same signed head again (an activity retried after its first attempt wrote) changes
nothing; a *different* head for a release's seq is stored next to the first: that is the fork.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Row

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.tables import audit_anchors
from gatekeeper.identity.heads import Anchor, AuditHead, SignedHead


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AnchorStore(Database):
    """Signed audit heads behind the registry's SQLAlchemy URL. Thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock

    def append(self, signed: SignedHead) -> Anchor:
        """Anchor ``signed``; the stored anchor (the earlier one if this head is stored already)."""
        head = signed.head
        with self._write(f"anchor the audit head of {head.release_id} at {head.seq}") as db:
            rows = db.execute(
                sa.select(audit_anchors).where(
                    audit_anchors.c.release_id == head.release_id,
                    audit_anchors.c.first_run_id == head.first_run_id,
                    audit_anchors.c.seq == head.seq,
                    audit_anchors.c.hash == head.hash,
                    audit_anchors.c.key_id == head.key_id,
                )
            ).all()
            if rows:
                return _anchor(rows[0])
            now = self._clock()
            db.execute(
                sa.insert(audit_anchors).values(
                    release_id=head.release_id,
                    first_run_id=head.first_run_id,
                    seq=head.seq,
                    hash=head.hash,
                    signed_at=head.signed_at,
                    key_id=head.key_id,
                    reason=head.reason,
                    head=head.model_dump(mode="json"),
                    signature=signed.signature,
                    anchored_at=now,
                )
            )
        return Anchor(head=head, signature=signed.signature, anchored_at=now)

    def anchors(self, release_id: str) -> list[Anchor]:
        """Every head anchored for ``release_id`` (any run), in the order they were written."""
        with self._read(f"read the anchors of {release_id}") as db:
            rows = db.execute(
                sa.select(audit_anchors)
                .where(audit_anchors.c.release_id == release_id)
                .order_by(audit_anchors.c.id)
            ).all()
        return [_anchor(row) for row in rows]


def _anchor(row: Row[tuple[object, ...]]) -> Anchor:
    mapping = row._mapping
    return Anchor(
        head=AuditHead.model_validate(mapping["head"]),
        signature=str(mapping["signature"]),
        anchored_at=mapping["anchored_at"],
    )

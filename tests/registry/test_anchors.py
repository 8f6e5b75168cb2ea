"""The anchor table keeps every signed head: a repeat is not duplicated, a different head for the
same event (a fork) is kept next to the first, and the database refuses updates and deletes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.adapters.anchors import AnchorStore
from gatekeeper.identity.heads import SignedHead, sign_head, verify_head
from gatekeeper.statements import public_key_b64


def head(
    key: Ed25519PrivateKey, seq: int, digest: str, reason: str = "stage x completed"
) -> SignedHead:
    return sign_head(
        key,
        release_id="aurora-2",
        first_run_id="run-1",
        seq=seq,
        hash=digest,
        reason=reason,
        first=0,
        links=[digest[:12]] * (seq + 1),
    )


class TestAnchorStore:
    """Inserts only; reading returns the heads in the order they were anchored, signatures intact."""

    def test_a_repeat_is_stored_once_and_a_fork_is_kept(self, empty_url: str) -> None:
        key = Ed25519PrivateKey.generate()
        first = head(key, 3, "a" * 64)
        with AnchorStore(empty_url) as store:
            stored = store.append(first)
            again = store.append(head(key, 3, "a" * 64, reason="retried"))
            fork = store.append(head(key, 3, "b" * 64, reason="after a reset"))
            other = store.anchors("another-release")
            anchors = store.anchors("aurora-2")

        assert again == stored, "a retried activity's head is the one stored first"
        assert [(a.head.seq, a.head.hash[0], a.head.reason) for a in anchors] == [
            (3, "a", "stage x completed"),
            (3, "b", "after a reset"),
        ]
        assert anchors[1] == fork
        assert other == []
        assert all(verify_head(public_key_b64(key), a) for a in anchors)

    @pytest.mark.parametrize(
        "statement", ["UPDATE audit_anchors SET hash = 'c'", "DELETE FROM audit_anchors"]
    )
    def test_the_database_refuses_updates_and_deletes(self, empty_url: str, statement: str) -> None:
        key = Ed25519PrivateKey.generate()
        with AnchorStore(empty_url) as store:
            store.append(head(key, 0, "a" * 64))
        engine = sa.create_engine(empty_url)
        try:
            with (
                pytest.raises(sa.exc.DatabaseError, match="audit anchors are append-only"),
                engine.begin() as connection,
            ):
                connection.exec_driver_sql(statement)
        finally:
            engine.dispose()
        with AnchorStore(empty_url) as store:
            assert [a.head.hash for a in store.anchors("aurora-2")] == ["a" * 64]

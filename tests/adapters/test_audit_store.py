"""The audit store (the registry's database) stores each event once and refuses a chain that
disagrees, whichever worker flushes it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.audit_store import DatabaseAuditStore, read_chain_file
from gatekeeper.adapters.registry.tables import audit_events
from gatekeeper.errors import AdapterError
from gatekeeper.models.audit import AuditEvent
from tests.adapters.builders import RELEASE, chain


def refused(store: DatabaseAuditStore, events: list[AuditEvent], match: str) -> AdapterError:
    with pytest.raises(AdapterError, match=match) as caught:
        store.store(RELEASE, events)
    assert caught.value.retryable is False
    return caught.value


def row_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return int(
                db.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one()
            )
    finally:
        engine.dispose()


class TestStore:
    """Events are stored in sequence; stored events are skipped, not duplicated."""

    def test_stores_a_batch_and_reads_it_back(
        self, audit_store: DatabaseAuditStore, database_url: str
    ) -> None:
        events = chain(3)

        result = audit_store.store(RELEASE, events)

        assert (result.stored, result.already_stored, result.length) == (3, 0, 3)
        assert audit_store.read(RELEASE) == events
        assert row_count(database_url) == 3
        assert audit_store.release_ids() == [RELEASE]

    def test_a_repeated_flush_stores_nothing_twice(
        self, audit_store: DatabaseAuditStore, database_url: str
    ) -> None:
        audit_store.store(RELEASE, chain(3))

        with DatabaseAuditStore(database_url) as other:
            result = other.store(RELEASE, chain(3))

        assert (result.stored, result.already_stored) == (0, 3)
        assert row_count(database_url) == 3

    def test_a_longer_flush_appends_only_the_tail(self, audit_store: DatabaseAuditStore) -> None:
        audit_store.store(RELEASE, chain(3))

        result = audit_store.store(RELEASE, list(reversed(chain(5))))  # order in a batch is free

        assert (result.stored, result.already_stored, result.length) == (2, 3, 5)
        assert audit_store.read(RELEASE) == chain(5)

    def test_a_tail_only_flush_continues_the_chain(self, audit_store: DatabaseAuditStore) -> None:
        audit_store.store(RELEASE, chain(2))

        result = audit_store.store(RELEASE, chain(4)[2:])

        assert (result.stored, result.already_stored) == (2, 0)
        assert audit_store.read(RELEASE) == chain(4)

    def test_unknown_release_reads_empty(self, audit_store: DatabaseAuditStore) -> None:
        assert audit_store.read("nobody") == []

    def test_stored_events_cannot_be_changed_or_deleted(
        self, audit_store: DatabaseAuditStore, database_url: str
    ) -> None:
        audit_store.store(RELEASE, chain(2))
        engine = sa.create_engine(database_url)
        try:
            for statement in (
                sa.update(audit_events).values(hash="0" * 64),
                sa.delete(audit_events),
            ):
                with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as db:
                    db.execute(statement)
        finally:
            engine.dispose()

        assert audit_store.read(RELEASE) == chain(2)


class TestConcurrency:
    """Workers flushing the same chain at once all succeed, and it is stored once."""

    def test_concurrent_flushes_store_the_chain_once(self, database_url: str) -> None:
        events = chain(20)
        stores = [DatabaseAuditStore(database_url) for _ in range(6)]
        barrier = threading.Barrier(len(stores))
        new: list[int] = []
        errors: list[BaseException] = []

        def work(store: DatabaseAuditStore, count: int) -> None:
            barrier.wait()
            try:
                new.append(store.store(RELEASE, events[:count]).stored)
            except BaseException as err:
                errors.append(err)

        threads = [
            threading.Thread(target=work, args=(s, n))
            for s, n in zip(stores, (5, 10, 20, 20, 15, 1), strict=True)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for store in stores:
                store.close()

        assert errors == []
        assert sum(new) == 20
        with DatabaseAuditStore(database_url) as store:
            assert store.read(RELEASE) == events

    def test_two_processes_flushing_the_same_chain(self, database_url: str) -> None:
        script = (
            "import sys\n"
            "from gatekeeper.adapters.audit_store import DatabaseAuditStore\n"
            "from tests.adapters.builders import RELEASE, chain\n"
            "store = DatabaseAuditStore(sys.argv[1])\n"
            "events = chain(60)\n"
            "sys.stdin.readline()\n"
            "new = sum(store.store(RELEASE, events[: n + 1]).stored for n in range(60))\n"
            "store.close()\n"
            "print(new)\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, database_url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        new = [int(p.communicate(timeout=120)[0]) for p in procs]

        assert [p.returncode for p in procs] == [0, 0]
        assert sum(new) == 60
        assert row_count(database_url) == 60

    def test_a_different_chain_racing_for_the_same_seqs_is_refused(self, database_url: str) -> None:
        stores = [DatabaseAuditStore(database_url) for _ in range(2)]
        chains = [chain(10), chain(10, forked=True)]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def work(store: DatabaseAuditStore, events: list[AuditEvent]) -> None:
            barrier.wait()
            try:
                store.store(RELEASE, events)
                outcomes.append("stored")
            except AdapterError as err:
                outcomes.append("refused" if not err.retryable else f"retryable: {err}")

        threads = [
            threading.Thread(target=work, args=(s, c)) for s, c in zip(stores, chains, strict=True)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            stored = stores[0].read(RELEASE)
        finally:
            for store in stores:
                store.close()

        assert sorted(outcomes) == ["refused", "stored"]
        assert stored in chains  # one whole chain, never a mix


class TestRefusals:
    """A batch that would make the stored chain disagree is refused whole, for good."""

    def test_same_seq_with_another_hash_is_refused(self, audit_store: DatabaseAuditStore) -> None:
        audit_store.store(RELEASE, chain(3))

        refused(audit_store, chain(4, tampered=True), "already stored with hash")

        assert audit_store.read(RELEASE) == chain(3)

    def test_a_gap_is_refused(self, audit_store: DatabaseAuditStore) -> None:
        audit_store.store(RELEASE, chain(2))

        refused(audit_store, chain(5)[3:], "gap")

        assert audit_store.read(RELEASE) == chain(2)

    def test_a_gap_in_a_fresh_store_is_refused(self, audit_store: DatabaseAuditStore) -> None:
        refused(audit_store, chain(3)[1:], "gap")

    def test_an_event_that_does_not_link_to_the_head_is_refused(
        self, audit_store: DatabaseAuditStore
    ) -> None:
        audit_store.store(RELEASE, chain(2))

        refused(audit_store, chain(3, other=True)[2:], "does not link")

    def test_a_bad_event_refuses_the_whole_batch(self, audit_store: DatabaseAuditStore) -> None:
        batch = chain(4)
        del batch[2]

        refused(audit_store, batch, "gap")

        assert audit_store.read(RELEASE) == []

    def test_another_releases_event_is_refused(self, audit_store: DatabaseAuditStore) -> None:
        refused(audit_store, chain(1, release_id="other-1"), "other-1")

    @pytest.mark.parametrize("release_id", ["../escape", "", "UPPER", "a/b"])
    def test_a_release_id_that_is_not_an_identifier_is_refused(
        self, audit_store: DatabaseAuditStore, release_id: str
    ) -> None:
        with pytest.raises(AdapterError, match="not a release id") as caught:
            audit_store.read(release_id)

        assert caught.value.retryable is False

    def test_a_corrupt_stored_event_is_not_retryable(
        self, audit_store: DatabaseAuditStore, database_url: str
    ) -> None:
        engine = sa.create_engine(database_url)
        with engine.begin() as db:
            db.execute(
                sa.insert(audit_events).values(
                    release_id=RELEASE,
                    seq=0,
                    hash="0" * 64,
                    prev_hash="0" * 64,
                    event={"seq": "x"},
                    stored_at=datetime.now(UTC),
                )
            )
        engine.dispose()

        with pytest.raises(AdapterError, match="not an audit event") as caught:
            audit_store.read(RELEASE)

        assert caught.value.retryable is False


class TestChainFiles:
    """A pre-database audit file reads back; a torn last line is dropped, other damage named."""

    def test_a_torn_last_line_is_ignored(self, tmp_path: Path) -> None:
        path = tmp_path / f"{RELEASE}.jsonl"
        path.write_bytes(
            b"".join(e.model_dump_json().encode() + b"\n" for e in chain(2))
            + b'{"release_id": "atlas-2", "seq": 2, "at"'
        )

        assert read_chain_file(path) == chain(2)

    def test_a_corrupt_line_is_not_retryable(self, tmp_path: Path) -> None:
        (tmp_path / f"{RELEASE}.jsonl").write_text('{"seq": "x"}\n')

        with pytest.raises(AdapterError, match=f"{RELEASE}.jsonl:1") as caught:
            read_chain_file(tmp_path / f"{RELEASE}.jsonl")

        assert caught.value.retryable is False

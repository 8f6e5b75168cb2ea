"""The JSONL audit store appends each event once and refuses a chain that disagrees."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gatekeeper.adapters.audit_store import JsonlAuditStore
from gatekeeper.errors import AdapterError
from gatekeeper.models.audit import AuditEvent
from tests.adapters.builders import RELEASE, chain


def refused(store: JsonlAuditStore, events: list[AuditEvent], match: str) -> AdapterError:
    with pytest.raises(AdapterError, match=match) as caught:
        store.store(RELEASE, events)
    assert caught.value.retryable is False
    return caught.value


class TestStore:
    """Events are appended in sequence; stored events are skipped, not duplicated."""

    def test_stores_a_batch_and_reads_it_back(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path / "audit")
        events = chain(3)

        result = store.store(RELEASE, events)

        assert (result.stored, result.already_stored) == (3, 0)
        assert store.read(RELEASE) == events
        assert len((tmp_path / "audit" / f"{RELEASE}.jsonl").read_text().splitlines()) == 3

    def test_a_repeated_flush_stores_nothing_twice(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(3))
        before = (tmp_path / f"{RELEASE}.jsonl").read_bytes()

        result = JsonlAuditStore(tmp_path).store(RELEASE, chain(3))

        assert (result.stored, result.already_stored) == (0, 3)
        assert (tmp_path / f"{RELEASE}.jsonl").read_bytes() == before

    def test_a_longer_flush_appends_only_the_tail(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(3))

        result = store.store(RELEASE, list(reversed(chain(5))))  # order in a batch is free

        assert (result.stored, result.already_stored) == (2, 3)
        assert store.read(RELEASE) == chain(5)

    def test_a_tail_only_flush_continues_the_chain(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(2))

        result = store.store(RELEASE, chain(4)[2:])

        assert (result.stored, result.already_stored) == (2, 0)
        assert store.read(RELEASE) == chain(4)

    def test_unknown_release_reads_empty(self, tmp_path: Path) -> None:
        assert JsonlAuditStore(tmp_path).read("nobody") == []

    def test_concurrent_flushes_store_the_chain_once(self, tmp_path: Path) -> None:
        events = chain(20)
        barrier = threading.Barrier(6)
        new: list[int] = []

        def work(count: int) -> None:
            store = JsonlAuditStore(tmp_path)
            barrier.wait()
            new.append(store.store(RELEASE, events[:count]).stored)

        threads = [threading.Thread(target=work, args=(n,)) for n in (5, 10, 20, 20, 15, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(new) == 20
        assert JsonlAuditStore(tmp_path).read(RELEASE) == events


class TestRefusals:
    """A batch that would make the stored chain disagree is refused whole, for good."""

    def test_same_seq_with_another_hash_is_refused(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(3))

        refused(store, chain(4, tampered=True), "already stored with hash")

        assert store.read(RELEASE) == chain(3)

    def test_a_gap_is_refused(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(2))

        refused(store, chain(5)[3:], "gap")

        assert store.read(RELEASE) == chain(2)

    def test_a_gap_in_a_fresh_store_is_refused(self, tmp_path: Path) -> None:
        refused(JsonlAuditStore(tmp_path), chain(3)[1:], "gap")

    def test_an_event_that_does_not_link_to_the_head_is_refused(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(2))

        refused(store, chain(3, other=True)[2:], "does not link")

    def test_a_bad_event_refuses_the_whole_batch(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        batch = chain(4)
        del batch[2]

        refused(store, batch, "gap")

        assert store.read(RELEASE) == []

    def test_another_releases_event_is_refused(self, tmp_path: Path) -> None:
        refused(JsonlAuditStore(tmp_path), chain(1, release_id="other-1"), "other-1")

    @pytest.mark.parametrize("release_id", ["../escape", "", "UPPER", "a/b"])
    def test_a_release_id_that_is_not_an_identifier_is_refused(
        self, tmp_path: Path, release_id: str
    ) -> None:
        with pytest.raises(AdapterError, match="not a release id") as caught:
            JsonlAuditStore(tmp_path).read(release_id)

        assert caught.value.retryable is False


class TestDamagedFiles:
    """A torn last line is dropped; any other damage is reported, never repaired silently."""

    def test_a_torn_last_line_is_ignored_and_replaced(self, tmp_path: Path) -> None:
        store = JsonlAuditStore(tmp_path)
        store.store(RELEASE, chain(2))
        with (tmp_path / f"{RELEASE}.jsonl").open("ab") as handle:
            handle.write(b'{"release_id": "atlas-2", "seq": 2, "at"')

        assert store.read(RELEASE) == chain(2)
        result = store.store(RELEASE, chain(3))

        assert (result.stored, result.already_stored) == (1, 2)
        assert store.read(RELEASE) == chain(3)

    def test_a_corrupt_line_is_not_retryable(self, tmp_path: Path) -> None:
        (tmp_path / f"{RELEASE}.jsonl").write_text('{"seq": "x"}\n')

        with pytest.raises(AdapterError, match=f"{RELEASE}.jsonl:1") as caught:
            JsonlAuditStore(tmp_path).store(RELEASE, chain(1))

        assert caught.value.retryable is False

    def test_an_unwritable_directory_is_retryable(self, tmp_path: Path) -> None:
        (tmp_path / "audit").write_text("not a directory")

        with pytest.raises(AdapterError) as caught:
            JsonlAuditStore(tmp_path / "audit").store(RELEASE, chain(1))

        assert caught.value.retryable is True

"""The send journal records each delivery key once, across threads, processes and hosts: the
database's primary key decides, and exactly one writer wins each claim and each record."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.adapters.outbox import Outbox
from gatekeeper.adapters.registry.tables import deliveries as table
from gatekeeper.channels import ChannelConfig, SendJournal
from gatekeeper.channels.webhook import WebhookSettings

KEY = "atlas-2:internal_review:gate_waiting:0:priya:hook"
RECORD = {"channel": "hook", "channel_type": "webhook", "notification": {"release_id": "atlas-2"}}
HOOK = ChannelConfig(
    "hook", WebhookSettings(type="webhook", url="https://hooks.example.org/", secret_env="S")
)


def rows(url: str) -> list[dict[str, object]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(table).order_by(table.c.key))]
    finally:
        engine.dispose()


class TestRecord:
    """A key is recorded once; a repeated record changes nothing and says so."""

    def test_first_record_wins_and_a_repeat_is_refused(
        self, deliveries: DeliveryStore, database_url: str
    ) -> None:
        assert not deliveries.delivered(KEY)

        assert deliveries.record(KEY, RECORD) is True
        assert deliveries.record(KEY, {**RECORD, "status": 500}) is False

        assert deliveries.delivered(KEY)
        [row] = rows(database_url)
        assert (row["release_id"], row["channel"], row["channel_type"]) == (
            "atlas-2",
            "hook",
            "webhook",
        )
        assert row["record"] == RECORD and row["delivered_at"] is not None

    def test_a_claim_is_not_a_delivery_and_its_record_completes_it(
        self, deliveries: DeliveryStore, database_url: str
    ) -> None:
        assert deliveries.claim(KEY, channel="hook", channel_type="webhook") is True
        assert deliveries.claim(KEY, channel="hook", channel_type="webhook") is False
        assert not deliveries.delivered(KEY)
        assert deliveries.claims("atlas-2") == [KEY]

        assert deliveries.record(KEY, RECORD) is True

        assert deliveries.delivered(KEY) and deliveries.claims() == []
        assert deliveries.claim(KEY, channel="hook", channel_type="webhook") is False
        [row] = rows(database_url)
        assert row["claimed_at"] is not None and row["claimed_at"] <= row["delivered_at"]

    def test_lines_are_outbox_shaped_per_release(self, deliveries: DeliveryStore) -> None:
        deliveries.record("atlas-2:a:0:priya:outbox", {"channel": "outbox", "n": 1})
        deliveries.record("orion-1:a:0:priya:outbox", {"channel": "outbox", "n": 2})
        deliveries.claim("atlas-2:a:0:sam:hook", channel="hook", channel_type="webhook")

        [line] = deliveries.lines("atlas-2")

        assert line["key"] == "atlas-2:a:0:priya:outbox"
        assert (line["channel"], line["n"]) == ("outbox", 1)
        assert isinstance(line["written_at"], str)
        assert len(deliveries.lines()) == 2

    def test_a_record_may_not_override_the_key(self, deliveries: DeliveryStore) -> None:
        with pytest.raises(ValueError, match="key"):
            deliveries.record(KEY, {"key": "other"})


class TestBatches:
    """A batch records each key once, completes claims, and leaves deliveries alone."""

    def test_a_batch_records_new_and_claimed_keys_only(
        self, deliveries: DeliveryStore, database_url: str
    ) -> None:
        deliveries.record("atlas-2:s:0:p:outbox", {"channel": "outbox", "n": 0})
        deliveries.claim("atlas-2:s:1:p:outbox", channel="outbox", channel_type="outbox")
        batch = [(f"atlas-2:s:{i}:p:outbox", {"channel": "outbox", "n": i}) for i in range(250)]

        won = deliveries.record_many(batch)

        assert won == {key for key, _ in batch[1:]}
        assert deliveries.delivered_among([k for k, _ in batch] + ["nope"]) == {k for k, _ in batch}
        stored = {str(r["key"]): r["record"] for r in rows(database_url)}
        assert stored["atlas-2:s:0:p:outbox"] == {"channel": "outbox", "n": 0}  # untouched
        assert stored["atlas-2:s:1:p:outbox"] == {"channel": "outbox", "n": 1}  # completed
        assert deliveries.record_many(batch) == set()

    def test_racing_batches_record_each_key_once(self, database_url: str) -> None:
        batch = [(f"atlas-2:s:{i}:p:outbox", {"channel": "outbox"}) for i in range(400)]
        stores = [DeliveryStore(database_url) for _ in range(4)]
        won: list[set[str]] = []
        barrier = threading.Barrier(len(stores))

        def work(store: DeliveryStore, step: int) -> None:
            barrier.wait()
            won.append(store.record_many(batch[::step]))

        threads = [
            threading.Thread(target=work, args=(s, 1 if i % 2 else -1))
            for i, s in enumerate(stores)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for store in stores:
                store.close()

        assert sum(len(w) for w in won) == 400
        assert set().union(*won) == {k for k, _ in batch}


class TestJournal:
    """The journal records in the database and mirrors each delivery it won to the outbox file."""

    def test_the_winner_writes_one_outbox_line(
        self, journal: SendJournal, deliveries: DeliveryStore, tmp_path: Path
    ) -> None:
        other = SendJournal(deliveries, Outbox(tmp_path / "other" / "outbox.jsonl"))

        assert journal.claim(KEY, HOOK) is True
        assert other.claim(KEY, HOOK) is False
        assert journal.record(KEY, RECORD) is True
        assert other.record(KEY, RECORD) is False
        journal.sync()

        assert [line["key"] for line in Outbox(tmp_path / "outbox.jsonl").read()] == [KEY]
        assert not (tmp_path / "other" / "outbox.jsonl").exists()
        assert journal.already_delivered(KEY) and other.already_delivered(KEY)

    def test_the_outbox_file_is_not_consulted(self, journal: SendJournal, tmp_path: Path) -> None:
        journal.record(KEY, RECORD)
        (tmp_path / "outbox.jsonl").unlink()  # the mirror lost, the journal stands

        assert journal.already_delivered(KEY)
        assert journal.record(KEY, RECORD) is False
        assert not (tmp_path / "outbox.jsonl").exists()


class TestConcurrency:
    """However writers interleave, each key is claimed once and recorded once."""

    def test_threads_with_their_own_connections(self, database_url: str) -> None:
        keys = [f"atlas-2:s:{i}:p:outbox" for i in range(150)]
        stores = [DeliveryStore(database_url) for _ in range(6)]
        wins: list[int] = []
        claims: list[int] = []
        barrier = threading.Barrier(len(stores))

        def work(store: DeliveryStore, step: int) -> None:
            barrier.wait()
            claimed = recorded = 0
            for key in keys[::step]:
                claimed += store.claim(key, channel="outbox", channel_type="outbox")
                recorded += store.record(key, {"channel": "outbox"})
            claims.append(claimed)
            wins.append(recorded)

        threads = [
            threading.Thread(target=work, args=(s, 1 if i % 2 else -1))
            for i, s in enumerate(stores)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for store in stores:
                store.close()

        assert sum(claims) == len(keys)
        assert sum(wins) == len(keys)
        assert sorted(str(r["key"]) for r in rows(database_url)) == sorted(keys)
        assert all(r["delivered_at"] is not None for r in rows(database_url))

    def test_two_processes_recording_the_same_keys(self, database_url: str) -> None:
        script = (
            "import sys\n"
            "from gatekeeper.adapters.deliveries import DeliveryStore\n"
            "store = DeliveryStore(sys.argv[1])\n"
            "keys = [f'atlas-2:s:{i}:p:outbox' for i in range(300)][:: int(sys.argv[2])]\n"
            "sys.stdin.readline()\n"
            "wins = sum(store.record(key, {'channel': 'outbox'}) for key in keys)\n"
            "store.close()\n"
            "print(wins)\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, database_url, step],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for step in ("1", "-1")
        ]
        for proc in procs:  # start both only once both are ready
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        wins = [int(p.communicate(timeout=120)[0]) for p in procs]

        assert [p.returncode for p in procs] == [0, 0]
        assert sum(wins) == 300
        assert len(rows(database_url)) == 300

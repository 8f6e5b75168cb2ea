"""The embedded clearinghouse issues one receipt per submission key, whichever worker asks: the
receipt is one row of the registry's database that exactly one writer inserts."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse
from gatekeeper.adapters.registry.tables import clearinghouse_receipts
from gatekeeper.errors import ClearinghouseError
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.status import GovernmentReceipt
from tests.adapters.builders import T0, submission


def stored_rows(url: str) -> list[dict[str, object]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(clearinghouse_receipts))]
    finally:
        engine.dispose()


@pytest.fixture
def named(database_url: str) -> Iterator[DatabaseClearinghouse]:
    with DatabaseClearinghouse(database_url, name="cisa-drop", clock=lambda: T0) as store:
        yield store


class TestSubmit:
    """A submission is stored with the receipt issued for it."""

    def test_stores_submission_and_receipt(
        self, named: DatabaseClearinghouse, database_url: str
    ) -> None:
        request = submission()

        receipt = named.submit(request)

        assert re.fullmatch(r"GOV-[0-9a-f]{12}", receipt.receipt_id)
        assert (receipt.clearinghouse, receipt.received_at) == ("cisa-drop", T0)
        assert receipt.location == f"clearinghouse_receipts:{request.idempotency_key}"
        [row] = stored_rows(database_url)
        assert SubmissionRequest.model_validate(row["submission"]) == request
        assert GovernmentReceipt.model_validate(row["receipt"]) == receipt
        assert (row["idempotency_key"], row["release_id"]) == (
            request.idempotency_key,
            request.release_id,
        )

    def test_same_key_returns_the_stored_receipt_unchanged(
        self, clearinghouse: DatabaseClearinghouse, database_url: str
    ) -> None:
        first = clearinghouse.submit(submission())

        with DatabaseClearinghouse(database_url, clock=lambda: T0) as other:
            again = other.submit(submission())

        assert again == first
        assert len(stored_rows(database_url)) == 1
        assert clearinghouse.receipts("atlas-2") == [first]

    def test_another_key_gets_another_receipt(self, clearinghouse: DatabaseClearinghouse) -> None:
        first = clearinghouse.submit(submission())
        second = clearinghouse.submit(submission("atlas-2:government_submission:submit:1"))

        assert first.receipt_id != second.receipt_id
        assert len(clearinghouse.receipts("atlas-2")) == 2

    def test_any_key_is_stored_as_given(self, clearinghouse: DatabaseClearinghouse) -> None:
        request = submission("../outside/ü")

        first = clearinghouse.submit(request)

        assert clearinghouse.submit(request) == first
        assert clearinghouse.receipt("../outside/ü") == first


class TestConcurrency:
    """Workers racing on one key all get the one receipt that was stored."""

    def test_threads_share_one_receipt(self, database_url: str) -> None:
        results: list[GovernmentReceipt] = []
        stores = [DatabaseClearinghouse(database_url) for _ in range(6)]
        barrier = threading.Barrier(len(stores))

        def work(store: DatabaseClearinghouse) -> None:
            barrier.wait()
            results.append(store.submit(submission()))

        threads = [threading.Thread(target=work, args=(s,)) for s in stores]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for store in stores:
                store.close()

        assert len(results) == 6 and len({r.receipt_id for r in results}) == 1
        [row] = stored_rows(database_url)
        assert row["receipt_id"] == results[0].receipt_id

    def test_two_processes_share_one_receipt_per_key(self, database_url: str) -> None:
        script = (
            "import sys\n"
            "from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse\n"
            "from tests.adapters.builders import submission\n"
            "store = DatabaseClearinghouse(sys.argv[1])\n"
            "sys.stdin.readline()\n"
            "for i in range(30):\n"
            "    r = store.submit(submission(f'atlas-2:government_submission:submit:{i}'))\n"
            "    print(i, r.receipt_id)\n"
            "store.close()\n"
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
        outputs = [p.communicate(timeout=120)[0] for p in procs]

        assert [p.returncode for p in procs] == [0, 0]
        assert outputs[0] == outputs[1]  # the same receipt for every key, in both processes
        assert len(stored_rows(database_url)) == 30


class TestFailures:
    """A corrupt stored receipt is refused, not retried."""

    def test_corrupt_stored_receipt_is_not_retryable(
        self, clearinghouse: DatabaseClearinghouse, database_url: str
    ) -> None:
        engine = sa.create_engine(database_url)
        with engine.begin() as db:
            db.execute(
                sa.insert(clearinghouse_receipts).values(
                    idempotency_key=submission().idempotency_key,
                    release_id="atlas-2",
                    receipt_id="GOV-x",
                    clearinghouse="x",
                    received_at=datetime.now(UTC),
                    submission={},
                    receipt={"receipt_id": 7},
                )
            )
        engine.dispose()

        with pytest.raises(ClearinghouseError, match="corrupt") as caught:
            clearinghouse.submit(submission())

        assert caught.value.retryable is False

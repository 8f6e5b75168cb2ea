"""The file-drop clearinghouse issues one receipt per submission key, whoever asks."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from gatekeeper.adapters.clearinghouse import FileDropClearinghouse, drop_filename
from gatekeeper.errors import ClearinghouseError
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.status import GovernmentReceipt
from tests.adapters.builders import T0, submission


class TestSubmit:
    """A submission is dropped as JSON and answered with a receipt stored beside it."""

    def test_writes_submission_and_receipt(self, tmp_path: Path) -> None:
        request = submission()

        receipt = FileDropClearinghouse(tmp_path, name="cisa-drop", clock=lambda: T0).submit(
            request
        )

        assert re.fullmatch(r"GOV-[0-9a-f]{12}", receipt.receipt_id)
        assert receipt.clearinghouse == "cisa-drop"
        assert receipt.received_at == T0
        dropped = tmp_path / "submissions" / f"{request.idempotency_key}.json"
        assert receipt.location == str(dropped)
        assert SubmissionRequest.model_validate_json(dropped.read_text()) == request
        stored = tmp_path / "receipts" / f"{request.idempotency_key}.json"
        assert GovernmentReceipt.model_validate_json(stored.read_text()) == receipt
        assert not list(tmp_path.rglob(".tmp-*"))

    def test_same_key_returns_the_stored_receipt_unchanged(self, tmp_path: Path) -> None:
        first = FileDropClearinghouse(tmp_path).submit(submission())
        receipts = tmp_path / "receipts" / f"{submission().idempotency_key}.json"
        before = receipts.read_bytes()

        again = FileDropClearinghouse(tmp_path, clock=lambda: T0).submit(submission())

        assert again == first
        assert receipts.read_bytes() == before

    def test_another_key_gets_another_receipt(self, tmp_path: Path) -> None:
        clearinghouse = FileDropClearinghouse(tmp_path)

        first = clearinghouse.submit(submission())
        second = clearinghouse.submit(submission("atlas-2:government_submission:submit:1"))

        assert first.receipt_id != second.receipt_id
        assert len(list((tmp_path / "receipts").iterdir())) == 2

    def test_concurrent_submissions_share_one_receipt(self, tmp_path: Path) -> None:
        results: list[GovernmentReceipt] = []
        barrier = threading.Barrier(8)

        def work() -> None:
            clearinghouse = FileDropClearinghouse(tmp_path)
            barrier.wait()
            results.append(clearinghouse.submit(submission()))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(results) == 8
        assert len({r.receipt_id for r in results}) == 1
        stored = json.loads(next((tmp_path / "receipts").iterdir()).read_text())
        assert stored["receipt_id"] == results[0].receipt_id


class TestFailures:
    """Storage problems are retryable; a corrupt stored receipt is not."""

    def test_unwritable_drop_is_retryable(self, tmp_path: Path) -> None:
        (tmp_path / "drop").write_text("a file where the directory should be")

        with pytest.raises(ClearinghouseError) as caught:
            FileDropClearinghouse(tmp_path / "drop").submit(submission())

        assert caught.value.retryable is True

    def test_corrupt_stored_receipt_is_not_retryable(self, tmp_path: Path) -> None:
        receipt = tmp_path / "receipts" / f"{submission().idempotency_key}.json"
        receipt.parent.mkdir()
        receipt.write_text('{"receipt_id": 7}')

        with pytest.raises(ClearinghouseError, match="corrupt") as caught:
            FileDropClearinghouse(tmp_path).submit(submission())

        assert caught.value.retryable is False


class TestDropFilename:
    """Safe keys name their file; any other key is named by its digest and stays inside."""

    def test_safe_key_is_kept(self) -> None:
        assert drop_filename("atlas-2:launch:publish:0") == "atlas-2:launch:publish:0.json"

    @pytest.mark.parametrize("key", ["../../etc/passwd", ".hidden", "a/b", "", "x" * 300, "ü"])
    def test_unsafe_key_is_hashed(self, key: str) -> None:
        name = drop_filename(key)

        assert re.fullmatch(r"key-[0-9a-f]{64}\.json", name)
        assert drop_filename(key) == name

    def test_unsafe_key_still_deduplicates(self, tmp_path: Path) -> None:
        clearinghouse = FileDropClearinghouse(tmp_path)
        request = submission("../outside")

        first = clearinghouse.submit(request)

        assert clearinghouse.submit(request) == first
        assert Path(first.location).parent == tmp_path / "submissions"

"""submit_to_government returns one receipt per key and types its failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.government import GovernmentActivities
from gatekeeper.adapters.clearinghouse import FileDropClearinghouse
from gatekeeper.models.status import GovernmentReceipt
from tests.adapters.builders import submission


class TestSubmitToGovernment:
    """A retry gets the first receipt; a broken drop is retried; a corrupt one is not."""

    def test_returns_the_same_receipt_on_retry(self, tmp_path: Path) -> None:
        acts = GovernmentActivities(FileDropClearinghouse(tmp_path))
        env = ActivityEnvironment()

        first = env.run(acts.submit_to_government, submission())
        retry = env.run(acts.submit_to_government, submission())

        assert isinstance(first, GovernmentReceipt)
        assert retry == first
        assert Path(first.location).is_file()

    def test_unwritable_drop_is_retryable(self, tmp_path: Path) -> None:
        (tmp_path / "drop").write_text("not a directory")
        acts = GovernmentActivities(FileDropClearinghouse(tmp_path / "drop"))

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.submit_to_government, submission())

        assert (caught.value.type, caught.value.non_retryable) == ("ClearinghouseError", False)

    def test_corrupt_receipt_fails_for_good(self, tmp_path: Path) -> None:
        receipt = tmp_path / "receipts" / f"{submission().idempotency_key}.json"
        receipt.parent.mkdir()
        receipt.write_text("{}")
        acts = GovernmentActivities(FileDropClearinghouse(tmp_path))

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.submit_to_government, submission())

        assert (caught.value.type, caught.value.non_retryable) == ("ClearinghouseError", True)

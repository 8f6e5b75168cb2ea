"""submit_to_government returns one receipt per key and types its failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.government import GovernmentActivities
from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse
from gatekeeper.adapters.registry.tables import clearinghouse_receipts
from gatekeeper.models.status import GovernmentReceipt
from tests.adapters.builders import submission


class TestSubmitToGovernment:
    """A retry gets the first receipt; an unreachable database is retried; a corrupt receipt
    is not."""

    def test_returns_the_same_receipt_on_retry(self, clearinghouse: DatabaseClearinghouse) -> None:
        acts = GovernmentActivities(clearinghouse)
        env = ActivityEnvironment()

        first = env.run(acts.submit_to_government, submission())
        retry = env.run(acts.submit_to_government, submission())

        assert isinstance(first, GovernmentReceipt)
        assert retry == first
        assert clearinghouse.receipt(submission().idempotency_key) == first

    def test_an_unreachable_database_is_retryable(
        self, clearinghouse: DatabaseClearinghouse, break_database: Callable[[Any], None]
    ) -> None:
        acts = GovernmentActivities(clearinghouse)
        break_database(clearinghouse)

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.submit_to_government, submission())

        assert (caught.value.type, caught.value.non_retryable) == ("RegistryError", False)

    def test_corrupt_receipt_fails_for_good(
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
                    receipt={},
                )
            )
        engine.dispose()
        acts = GovernmentActivities(clearinghouse)

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.submit_to_government, submission())

        assert (caught.value.type, caught.value.non_retryable) == ("ClearinghouseError", True)

"""The embedded launch publisher records one launch per key, whichever worker asks: the record
is one row of the registry's database that exactly one writer inserts."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.launch import DatabaseLaunchPublisher, PublishedLaunch
from gatekeeper.adapters.registry.tables import launches
from gatekeeper.errors import AdapterError
from gatekeeper.models.enums import Surface
from gatekeeper.models.io import LaunchReceipt
from tests.adapters.builders import T0, launch


def stored_rows(url: str) -> list[dict[str, object]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(sa.select(launches))]
    finally:
        engine.dispose()


class TestPublish:
    """A launch is one row keyed by its idempotency key; the same key returns the same launch."""

    def test_stores_the_launch_record(self, database_url: str) -> None:
        request = launch()

        with DatabaseLaunchPublisher(database_url, clock=lambda: T0) as publisher:
            receipt = publisher.publish(request)

        assert re.fullmatch(r"LAUNCH-[0-9a-f]{12}", receipt.launch_id)
        assert receipt.published_at == T0
        assert receipt.location == f"launches:{request.idempotency_key}"
        [row] = stored_rows(database_url)
        record = PublishedLaunch.model_validate(row["record"])
        assert (row["launch_id"], row["release_id"]) == (receipt.launch_id, "atlas-2")
        assert record.launch_id == receipt.launch_id
        assert record.surfaces == [Surface.API, Surface.APP]
        assert record.release_id == request.release_id
        assert record.approved_by == ["exec-carol"]

    def test_same_key_returns_the_first_launch(
        self, launcher: DatabaseLaunchPublisher, database_url: str
    ) -> None:
        first = launcher.publish(launch())

        with DatabaseLaunchPublisher(database_url, clock=lambda: T0) as other:
            again = other.publish(launch())

        assert again == first
        assert len(stored_rows(database_url)) == 1
        assert [r.launch_id for r in launcher.launches_of("atlas-2")] == [first.launch_id]
        assert launcher.launches_of("orion-1") == []

    def test_concurrent_publishes_share_one_launch(self, database_url: str) -> None:
        results: list[LaunchReceipt] = []
        publishers = [DatabaseLaunchPublisher(database_url) for _ in range(6)]
        barrier = threading.Barrier(len(publishers))

        def work(publisher: DatabaseLaunchPublisher) -> None:
            barrier.wait()
            results.append(publisher.publish(launch()))

        threads = [threading.Thread(target=work, args=(p,)) for p in publishers]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for publisher in publishers:
                publisher.close()

        assert len(results) == 6 and len({r.launch_id for r in results}) == 1
        assert [r["launch_id"] for r in stored_rows(database_url)] == [results[0].launch_id]


class TestFailures:
    """A corrupt stored launch is refused, not retried."""

    def test_corrupt_record_is_not_retryable(
        self, launcher: DatabaseLaunchPublisher, database_url: str
    ) -> None:
        engine = sa.create_engine(database_url)
        with engine.begin() as db:
            db.execute(
                sa.insert(launches).values(
                    idempotency_key=launch().idempotency_key,
                    release_id="atlas-2",
                    launch_id="LAUNCH-x",
                    published_at=datetime.now(UTC),
                    record={},
                )
            )
        engine.dispose()

        with pytest.raises(AdapterError, match="corrupt") as caught:
            launcher.publish(launch())

        assert caught.value.retryable is False

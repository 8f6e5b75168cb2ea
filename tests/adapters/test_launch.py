"""The file-drop launch publisher records one launch per key, whoever asks."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from gatekeeper.adapters.launch import FileDropLaunchPublisher, PublishedLaunch
from gatekeeper.errors import AdapterError
from gatekeeper.models.enums import Surface
from gatekeeper.models.io import LaunchReceipt
from tests.adapters.builders import T0, launch


class TestPublish:
    """A launch is one JSON file named by its key; the same key returns the same launch."""

    def test_writes_the_launch_record(self, tmp_path: Path) -> None:
        request = launch()

        receipt = FileDropLaunchPublisher(tmp_path, clock=lambda: T0).publish(request)

        assert re.fullmatch(r"LAUNCH-[0-9a-f]{12}", receipt.launch_id)
        assert receipt.published_at == T0
        path = tmp_path / f"{request.idempotency_key}.json"
        assert receipt.location == str(path)
        record = PublishedLaunch.model_validate_json(path.read_text())
        assert record.launch_id == receipt.launch_id
        assert record.surfaces == [Surface.API, Surface.APP]
        assert record.release_id == request.release_id
        assert record.approved_by == ["exec-carol"]

    def test_same_key_returns_the_first_launch(self, tmp_path: Path) -> None:
        first = FileDropLaunchPublisher(tmp_path).publish(launch())
        before = (tmp_path / f"{launch().idempotency_key}.json").read_bytes()

        again = FileDropLaunchPublisher(tmp_path, clock=lambda: T0).publish(launch())

        assert again == first
        assert (tmp_path / f"{launch().idempotency_key}.json").read_bytes() == before

    def test_concurrent_publishes_share_one_launch(self, tmp_path: Path) -> None:
        results: list[LaunchReceipt] = []
        barrier = threading.Barrier(6)

        def work() -> None:
            publisher = FileDropLaunchPublisher(tmp_path)
            barrier.wait()
            results.append(publisher.publish(launch()))

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len({r.launch_id for r in results}) == 1
        assert len(results) == 6
        assert [p.name for p in tmp_path.iterdir()] == [f"{launch().idempotency_key}.json"]


class TestFailures:
    """Storage problems are retryable; a corrupt stored launch is not."""

    def test_unwritable_drop_is_retryable(self, tmp_path: Path) -> None:
        (tmp_path / "drop").write_text("not a directory")

        with pytest.raises(AdapterError) as caught:
            FileDropLaunchPublisher(tmp_path / "drop").publish(launch())

        assert caught.value.retryable is True

    def test_corrupt_record_is_not_retryable(self, tmp_path: Path) -> None:
        (tmp_path / f"{launch().idempotency_key}.json").write_text("{}")

        with pytest.raises(AdapterError, match="corrupt") as caught:
            FileDropLaunchPublisher(tmp_path).publish(launch())

        assert caught.value.retryable is False

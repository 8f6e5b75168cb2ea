"""notify_stakeholders delivers through the notifier and fails the way the workflow expects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier
from gatekeeper.models.io import NotifySummary, Recipient
from tests.adapters.builders import notify_request
from tests.journals import Journals, journal_at

pytestmark = pytest.mark.usefixtures("journals")


def activities(path: Path) -> NotifyActivities:
    return NotifyActivities(Notifier(ChannelRegistry.embedded(journal_at(path))))


class TestNotifyStakeholders:
    """Deliveries happen once per key; heartbeats report progress; errors are typed."""

    def test_delivers_and_dedupes_a_retry(self, tmp_path: Path) -> None:
        acts = activities(tmp_path / "outbox.jsonl")
        env = ActivityEnvironment()

        first = env.run(acts.notify_stakeholders, notify_request(3))
        retry = env.run(acts.notify_stakeholders, notify_request(3))

        assert isinstance(first, NotifySummary)
        assert first.sent == 3
        assert retry.sent == 0
        assert len((tmp_path / "outbox.jsonl").read_text().splitlines()) == 3

    def test_heartbeats_during_a_fan_out(self, tmp_path: Path) -> None:
        env = ActivityEnvironment()
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)

        env.run(activities(tmp_path / "outbox.jsonl").notify_stakeholders, notify_request(250))

        assert beats == [(100,), (200,)]

    def test_accepts_plain_json_input(self, tmp_path: Path) -> None:
        payload: Any = notify_request(1).model_dump(mode="json")  # as an untyped caller sends it

        result = ActivityEnvironment().run(
            activities(tmp_path / "outbox.jsonl").notify_stakeholders, payload
        )

        assert result.sent == 1

    def test_an_unconfigured_channel_is_reported_not_retried(self, tmp_path: Path) -> None:
        request = notify_request(1)
        request.recipients.append(Recipient(id="x", channel="pager"))

        summary = ActivityEnvironment().run(
            activities(tmp_path / "outbox.jsonl").notify_stakeholders, request
        )

        assert summary.unconfigured == ["pager"]
        assert (summary.delivered, summary.by_channel) == (1, {"outbox": 1})

    def test_storage_failure_is_retried(
        self, tmp_path: Path, journals: Journals, break_database: Callable[[Any], None]
    ) -> None:
        break_database(journals.store)  # the send journal's database is down

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(
                activities(tmp_path / "outbox.jsonl").notify_stakeholders, notify_request(1)
            )

        assert (caught.value.type, caught.value.non_retryable) == ("DeliveryError", False)

    def test_invalid_input_fails_for_good(self, tmp_path: Path) -> None:
        payload: Any = {"recipients": []}

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(
                activities(tmp_path / "outbox.jsonl").notify_stakeholders, payload
            )

        assert (caught.value.type, caught.value.non_retryable) == ("ValidationError", True)

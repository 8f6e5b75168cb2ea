"""notify_stakeholders with a batch (issue 16): every notification one workflow task raised, in
one activity, each delivered under its own keys; failures reported per notification."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, delivery_key
from gatekeeper.adapters.outbox import Outbox
from gatekeeper.models.io import NotifyBatch, NotifyBatchSummary, NotifyFailure, Recipient
from tests.adapters.builders import notify_request
from tests.journals import Journals, journal_at
from workflows.timeouts import NOTIFY_RETRY

pytestmark = pytest.mark.usefixtures("journals")

FIRST = "atlas-2:internal_review:decision_recorded:4"
SECOND = "atlas-2:internal_review:gate_passed:5"


def activities(path: Path) -> NotifyActivities:
    return NotifyActivities(Notifier(ChannelRegistry.embedded(journal_at(path))))


def batch(first: int = 2, second: int = 3) -> NotifyBatch:
    return NotifyBatch(
        requests=[notify_request(first, key=FIRST), notify_request(second, key=SECOND)]
    )


def attempt(number: int) -> ActivityEnvironment:
    """An activity environment whose attempt is ``number`` of the notify retry policy's."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=number, retry_policy=NOTIFY_RETRY)
    return env


class TestNotifyBatch:
    """Each notification of a batch is delivered once per key, exactly as if sent alone; a retry
    of the batch delivers nothing twice; the result is counts and the failures only."""

    def test_delivers_each_under_its_own_keys_and_dedupes_a_retry(
        self, tmp_path: Path, journals: Journals
    ) -> None:
        outbox = tmp_path / "outbox.jsonl"
        first = attempt(1).run(activities(outbox).notify_stakeholders, batch())
        retry = attempt(2).run(activities(outbox).notify_stakeholders, batch())

        assert isinstance(first, NotifyBatchSummary)
        assert (first.notifications, first.deliveries, first.delivered) == (2, 5, 5)
        assert (retry.delivered, retry.already_delivered, retry.failed) == (0, 5, [])
        alone = [  # the keys each notification's deliveries get when it is sent alone
            delivery_key(request.notification, recipient)
            for request in batch().requests
            for recipient in request.recipients
        ]
        assert [line["key"] for line in Outbox(outbox).read()] == alone
        assert {line["key"] for line in journals.store.lines()} == set(alone)

    def test_heartbeats_count_deliveries_across_the_batch(self, tmp_path: Path) -> None:
        env = attempt(1)
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)

        env.run(activities(tmp_path / "outbox.jsonl").notify_stakeholders, batch(150, 150))

        assert (100,) in beats and (300,) in beats
        assert [b[0] for b in beats] == sorted(b[0] for b in beats)  # type: ignore[type-var]

    def test_an_unconfigured_channel_fails_only_its_notification(self, tmp_path: Path) -> None:
        request = batch()
        request.requests[1].recipients.append(Recipient(id="x", channel="pager"))

        summary = attempt(1).run(activities(tmp_path / "outbox.jsonl").notify_stakeholders, request)

        assert summary.delivered == 5
        assert summary.failed == [NotifyFailure(key=SECOND, unconfigured=["pager"])]

    def test_a_failure_that_may_pass_is_retried_then_reported(
        self, tmp_path: Path, journals: Journals, break_database: Callable[[Any], None]
    ) -> None:
        acts = activities(tmp_path / "outbox.jsonl")
        break_database(journals.store)  # the send journal's database is down

        with pytest.raises(ApplicationError) as caught:
            attempt(1).run(acts.notify_stakeholders, batch())
        assert (caught.value.type, caught.value.non_retryable) == ("DeliveryError", False)
        assert caught.value.message.startswith("2 of 2 notification(s) not delivered yet")
        assert "\n" not in caught.value.message

        last = NOTIFY_RETRY.maximum_attempts
        summary = attempt(last).run(acts.notify_stakeholders, batch())
        assert [f.key for f in summary.failed] == [FIRST, SECOND]
        assert all(f.error for f in summary.failed)

    def test_without_a_retry_limit_it_keeps_retrying(
        self, tmp_path: Path, journals: Journals, break_database: Callable[[Any], None]
    ) -> None:
        break_database(journals.store)
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, attempt=50, retry_policy=RetryPolicy())

        with pytest.raises(ApplicationError):
            env.run(activities(tmp_path / "outbox.jsonl").notify_stakeholders, batch())

    def test_an_empty_batch_is_invalid(self) -> None:
        with pytest.raises(ValueError):
            NotifyBatch(requests=[])

"""The notifier fans one notification out over channels, delivering each key once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, delivery_key
from gatekeeper.channels import ChannelConfig
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import Notification, NotifyRequest, Recipient
from tests.adapters.builders import (
    email_settings,
    notification,
    notify_request,
    recipients,
    webhook_settings,
)
from tests.journals import journal_at

pytestmark = pytest.mark.usefixtures("journals")


def embedded(path: Path) -> Notifier:
    return Notifier(ChannelRegistry.embedded(journal_at(path)))


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestOutboxChannel:
    """Each recipient gets one outbox line with the notification, recipient and channel."""

    def test_delivers_one_line_per_recipient(self, tmp_path: Path) -> None:
        request = notify_request(3)

        result = embedded(tmp_path / "outbox.jsonl").notify(request)

        assert [d.recipient for d in result.deliveries] == ["person-0", "person-1", "person-2"]
        assert all(d.channel == "outbox" and d.channel_type == "outbox" for d in result.deliveries)
        assert result.sent == 3
        written = lines(tmp_path / "outbox.jsonl")
        assert [r["key"] for r in written] == [d.key for d in result.deliveries]
        first = written[0]
        assert first["channel"] == "outbox"
        assert first["channel_type"] == "outbox"
        assert first["recipient"] == request.recipients[0].model_dump(mode="json")
        assert first["notification"] == request.notification.model_dump(mode="json")

    def test_key_is_notification_recipient_and_channel(self, tmp_path: Path) -> None:
        request = notify_request(1)

        [delivery] = embedded(tmp_path / "outbox.jsonl").notify(request).deliveries

        assert delivery.key == "atlas-2:internal_review:gate_waiting:0:person-0:outbox"
        assert delivery.key == delivery_key(request.notification, request.recipients[0])

    def test_a_retry_delivers_nothing_twice(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        embedded(path).notify(notify_request(2))

        again = embedded(path).notify(notify_request(3))  # another worker, one more recipient

        assert [d.duplicate for d in again.deliveries] == [True, True, False]
        assert again.sent == 1
        assert len(lines(path)) == 3

    def test_another_notification_is_delivered_again(self, tmp_path: Path) -> None:
        notifier = embedded(tmp_path / "outbox.jsonl")
        notifier.notify(notify_request(2))

        result = notifier.notify(notify_request(2, key="atlas-2:internal_review:reminder:1"))

        assert result.sent == 2

    def test_fan_out_to_five_thousand_recipients(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        notifier = embedded(path)
        beats: list[int] = []

        first = notifier.notify(notify_request(5000), progress=beats.append)
        second = notifier.notify(notify_request(5000))

        assert first.sent == 5000
        assert len({d.key for d in first.deliveries}) == 5000
        assert second.sent == 0
        assert beats == list(range(100, 5001, 100))
        assert len(lines(path)) == 5000


class TestLogChannel:
    """The log channel emits one event per delivery, and none for a repeated key."""

    def test_logs_each_delivery_once(self, tmp_path: Path) -> None:
        notifier = embedded(tmp_path / "outbox.jsonl")

        with capture_logs() as first:
            result = notifier.notify(notify_request(2, channel="log"))
        with capture_logs() as retried:
            again = notifier.notify(notify_request(2, channel="log"))

        delivered = [e for e in first if e["event"] == "notification.delivered"]
        assert [e["recipient"] for e in delivered] == ["person-0", "person-1"]
        assert delivered[0]["key"] == result.deliveries[0].key
        assert delivered[0]["notification_event"] == "gate_waiting"
        assert delivered[0]["subject"] == "Atlas 2 waits for your review"
        assert all(d.channel_type == "log" for d in result.deliveries)
        assert [e for e in retried if e["event"] == "notification.delivered"] == []
        assert all(d.duplicate for d in again.deliveries)

    def test_log_deliveries_are_claimed_in_the_outbox(self, tmp_path: Path) -> None:
        embedded(tmp_path / "outbox.jsonl").notify(notify_request(1, channel="log"))

        [line] = lines(tmp_path / "outbox.jsonl")
        assert line["channel_type"] == "log"


class TestChannelResolution:
    """Channel names are resolved against the worker's configuration (or the built-ins), never
    against the request; a name the worker does not define is reported and nothing is sent on it
    or anywhere else in its place; a channel type the worker cannot deliver fails before any
    delivery."""

    def test_configured_channels_are_resolved_by_name(self, tmp_path: Path) -> None:
        sent: list[tuple[str, str | None]] = []

        class Recording:
            def __init__(self, config: ChannelConfig) -> None:
                self.config = config

            def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
                assert self.config.settings is not None
                sent.append((self.config.id, self.config.settings.url))
                return True

            def close(self) -> None:
                pass

        registry = ChannelRegistry.embedded(journal_at(tmp_path / "outbox.jsonl"))
        registry.register("webhook", Recording)
        settings = webhook_settings("https://hooks.lab.example/reviewers")
        notifier = Notifier(registry, configured={"reviewers": settings})

        [delivery] = notifier.notify(notify_request(1, channel="reviewers")).deliveries

        assert (delivery.channel, delivery.channel_type) == ("reviewers", "webhook")
        assert sent == [("reviewers", "https://hooks.lab.example/reviewers")]

    def test_a_request_cannot_define_a_channel(self, tmp_path: Path) -> None:
        # A request recorded before channels moved to the worker carried their configuration;
        # it is dropped, and the name alone is looked up (here: not defined on this worker).
        request = NotifyRequest.model_validate(
            {
                "notification": notification().model_dump(mode="json"),
                "recipients": [{"id": "x", "channel": "evil"}],
                "channels": [{"id": "evil", "type": "outbox"}],
            }
        )

        result = embedded(tmp_path / "outbox.jsonl").notify(request)

        assert result.deliveries == [] and result.unconfigured == ["evil"]
        assert not (tmp_path / "outbox.jsonl").exists()

    def test_an_unconfigured_channel_is_reported_and_nothing_is_sent_on_it(
        self, tmp_path: Path
    ) -> None:
        request = notify_request(2)
        request.recipients.append(Recipient(id="x", channel="pager"))

        result = embedded(tmp_path / "outbox.jsonl").notify(request)

        assert result.unconfigured == ["pager"]
        assert [(d.recipient, d.channel) for d in result.deliveries] == [
            ("person-0", "outbox"),
            ("person-1", "outbox"),
        ]
        assert [line["recipient"]["id"] for line in lines(tmp_path / "outbox.jsonl")] == [
            "person-0",
            "person-1",
        ], "nothing for x, on pager or in its place"

    def test_unregistered_channel_type_is_refused_before_any_delivery(self, tmp_path: Path) -> None:
        notifier = Notifier(
            ChannelRegistry.embedded(journal_at(tmp_path / "outbox.jsonl")),
            configured={"hook": webhook_settings()},
        )
        request = notify_request(2)
        request.recipients.append(Recipient(id="x", channel="hook"))

        with pytest.raises(DeliveryError, match="webhook") as caught:
            notifier.notify(request)

        assert caught.value.retryable is False
        assert not (tmp_path / "outbox.jsonl").exists()

    def test_a_registered_channel_type_plugs_in_without_changing_dispatch(
        self, tmp_path: Path
    ) -> None:
        sent: list[str] = []

        class ListChannel:
            """A channel that appends to a list and dedupes on the key."""

            def __init__(self, config: ChannelConfig) -> None:
                self.config = config

            def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
                if key in sent:
                    return False
                sent.append(key)
                return True

            def close(self) -> None:
                sent.append(f"closed {self.config.id}")

        registry = ChannelRegistry.embedded(journal_at(tmp_path / "outbox.jsonl"))
        registry.register("webhook", ListChannel)
        request = notify_request()
        request.recipients[:] = [*recipients(2, "hook"), *recipients(1, "outbox")]

        result = Notifier(registry, configured={"hook": webhook_settings()}).notify(request)

        assert "webhook" in registry.kinds
        assert [d.channel_type for d in result.deliveries] == [
            "webhook",
            "webhook",
            "outbox",
        ]
        assert sent == [result.deliveries[0].key, result.deliveries[1].key, "closed hook"]

    def test_a_failing_channel_still_closes_the_others(self, tmp_path: Path) -> None:
        closed: list[str] = []

        class Broken:
            def __init__(self, config: ChannelConfig) -> None:
                pass

            def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
                raise OSError("connection reset")

            def close(self) -> None:
                closed.append("broken")

        registry = ChannelRegistry.embedded(journal_at(tmp_path / "outbox.jsonl"))
        registry.register("email", Broken)
        request = notify_request(1)
        request.recipients.append(Recipient(id="x", channel="mail"))

        with pytest.raises(DeliveryError, match="connection reset") as caught:
            Notifier(registry, configured={"mail": email_settings()}).notify(request)

        assert caught.value.retryable is True
        assert closed == ["broken"]
        assert len(lines(tmp_path / "outbox.jsonl")) == 1

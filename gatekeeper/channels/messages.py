"""What channels make of a notification: the text people read and the outbox line it leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatekeeper.ids import release_workflow_id
from gatekeeper.text import when

if TYPE_CHECKING:
    from gatekeeper.channels.base import ChannelConfig
    from gatekeeper.models.io import Notification, Recipient

PARTNER_PREFIX = "partner:"


def message_text(notification: Notification, recipient: Recipient | None = None) -> str:
    """The notification as plain text for people: what happened, what is needed, by when, where.

    Partners (``partner:<id>`` recipients) are not pointed at Gatekeeper's own tools.
    """
    lines = [notification.body.strip()]
    if notification.action_needed:
        lines += ["", f"What is needed from you: {notification.action_needed}"]
    if notification.due is not None:
        lines.append(f"By: {when(notification.due)}")
    where = f"stage {notification.stage}, " if notification.stage else ""
    lines += [
        "",
        f"Release {notification.release_id} ({where}event {notification.event.value}, "
        f"{when(notification.occurred_at)}).",
    ]
    if recipient is None or not recipient.id.startswith(PARTNER_PREFIX):
        lines.append(
            f"Where to look: `gatekeeper release status {notification.release_id}`, or workflow "
            f"{release_workflow_id(notification.release_id)} in the Temporal UI."
        )
    return "\n".join(lines) + "\n"


def notification_document(
    notification: Notification, recipient: Recipient, key: str, channel: str
) -> dict[str, Any]:
    """One delivery as a JSON document: the notification as data, plus a text for people (the
    body of a webhook request, the content of a ``file`` channel's file)."""
    return {
        "type": "gatekeeper.notification",
        "idempotency_key": key,
        "channel": channel,
        "recipient": recipient.model_dump(mode="json"),
        "notification": notification.model_dump(mode="json"),
        "text": message_text(notification, recipient),
    }


class DeliveryRecords:
    """Builds outbox lines for deliveries, serialising each notification once per fan-out."""

    def __init__(self, config: ChannelConfig) -> None:
        self._config = config
        self._dumped: dict[str, dict[str, Any]] = {}

    def record(
        self, notification: Notification, recipient: Recipient, **extra: Any
    ) -> dict[str, Any]:
        body = self._dumped.get(notification.idempotency_key)
        if body is None:
            body = self._dumped[notification.idempotency_key] = notification.model_dump(mode="json")
        return {
            "channel": self._config.id,
            "channel_type": self._config.type,
            "recipient": recipient.model_dump(mode="json"),
            "notification": body,
            **extra,
        }

"""What channels make of a notification: the text people read and the outbox line it leaves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gatekeeper.ids import release_workflow_id
from gatekeeper.text import when

if TYPE_CHECKING:
    from gatekeeper.channels.base import ChannelConfig
    from gatekeeper.models.io import Notification, Recipient

PARTNER_PREFIX = "partner:"
#: Where a notification carries the link to the console page its reader acts on.
CONSOLE_URL = "console_url"


def console_page(base_url: str, release_id: str) -> str:
    """The console page where people act on ``release_id`` (its Release page)."""
    return f"{base_url.rstrip('/')}/releases/{quote(release_id, safe='')}"


def with_console_link(notification: Notification, base_url: str | None) -> Notification | None:
    """``notification`` carrying the link to the console page where its reader acts
    (``details["console_url"]``), when it asks someone to act and the worker knows the console
    (``[console] url``); else ``None``. Added by the worker when it delivers: the workflow
    never knows the URL, so nothing about it enters a release's history."""
    if not base_url or not notification.action_needed:
        return None
    details = {**notification.details, CONSOLE_URL: console_page(base_url, notification.release_id)}
    return notification.model_copy(update={"details": details})


def message_text(notification: Notification, recipient: Recipient | None = None) -> str:
    """The notification as plain text for people: what happened, what is needed, by when, where.

    Partners (``partner:<id>`` recipients) are not pointed at Gatekeeper's own tools.
    """
    lines = [notification.body.strip()]
    if notification.action_needed:
        lines += ["", f"What is needed from you: {notification.action_needed}"]
    if notification.due is not None:
        lines.append(f"By: {when(notification.due)}")
    link = notification.details.get(CONSOLE_URL)
    if isinstance(link, str) and link:
        lines.append(f"Act here: {link}")
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
        self._dumped: dict[str, dict[str, Any]] = {}  # by key and link

    def record(
        self, notification: Notification, recipient: Recipient, **extra: Any
    ) -> dict[str, Any]:
        # People's copy may carry the console link and partners' not: one dump of each.
        cached = f"{notification.idempotency_key}|{notification.details.get(CONSOLE_URL, '')}"
        body = self._dumped.get(cached)
        if body is None:
            body = self._dumped[cached] = notification.model_dump(mode="json")
        return {
            "channel": self._config.id,
            "channel_type": self._config.type,
            "recipient": recipient.model_dump(mode="json"),
            "notification": body,
            **extra,
        }

"""Channel type ``log`` (built in): one structlog event per delivery, claimed in the journal.

Every worker has the channel ``log``; no configuration defines it or another of its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from gatekeeper.channels.base import (
    ChannelConfig,
    ChannelContext,
    ChannelFactory,
    ChannelSettings,
    ChannelType,
)
from gatekeeper.channels.outbox import OutboxChannel

if TYPE_CHECKING:
    from gatekeeper.channels.base import SendJournal
    from gatekeeper.models.io import Notification, Recipient


class LogSettings(ChannelSettings):
    """The built-in ``log`` channel: nothing to configure."""

    type: Literal["log"] = "log"
    builtin: ClassVar[bool] = True


class LogChannel:
    """Emits one structlog event per delivery.

    The key is recorded in the journal (a delivery with ``channel_type`` ``log``, mirrored to
    the outbox file) *before* the event is emitted, so a retried activity or a second worker,
    on any host, never logs a delivery twice. The price is that a worker dying between the
    record and the log line loses that one event; for a log that is the right trade, and the
    journal still records the delivery.
    """

    def __init__(self, config: ChannelConfig, journal: SendJournal) -> None:
        import structlog  # here: the configuration imports this module, and commands read it

        self._config = config
        self._claims = OutboxChannel(config, journal)
        self._log = structlog.get_logger("gatekeeper.notifications")

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        if not self._claims.deliver(notification, recipient, key):
            return False
        self._emit(notification, recipient, key)
        return True

    def deliver_many(self, items: Sequence[tuple[Notification, Recipient, str]]) -> list[bool]:
        """:meth:`deliver` for a batch: the keys are recorded first, then the winners logged."""
        sent = self._claims.deliver_many(items)
        for (notification, recipient, key), first in zip(items, sent, strict=True):
            if first:
                self._emit(notification, recipient, key)
        return sent

    def _emit(self, notification: Notification, recipient: Recipient, key: str) -> None:
        self._log.info(
            "notification.delivered",
            key=key,
            release_id=notification.release_id,
            notification_event=notification.event.value,
            stage=notification.stage,
            recipient=recipient.id,
            channel=self._config.id,
            subject=notification.subject,
            action_needed=notification.action_needed,
            due=notification.due.isoformat() if notification.due else None,
        )

    def close(self) -> None:
        self._claims.close()


def bind(context: ChannelContext) -> ChannelFactory:
    """Log channels claiming their keys in the worker's journal."""
    return lambda config: LogChannel(config, context.journal)


CHANNEL = ChannelType("log", LogSettings, bind)

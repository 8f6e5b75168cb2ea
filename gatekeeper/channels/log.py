"""Channel type ``log`` (built in): one structlog event per delivery, claimed in the outbox.

Every worker has the channel ``log``; no configuration defines it or another of its type.
"""

from __future__ import annotations

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
    from gatekeeper.adapters.outbox import Outbox
    from gatekeeper.models.io import Notification, Recipient


class LogSettings(ChannelSettings):
    """The built-in ``log`` channel: nothing to configure."""

    type: Literal["log"] = "log"
    builtin: ClassVar[bool] = True


class LogChannel:
    """Emits one structlog event per delivery.

    The key is claimed in the outbox (a line with ``channel_type`` ``log``) *before* the event
    is emitted, so a retried activity or a second worker never logs a delivery twice. The price
    is that a worker dying between the claim and the log line loses that one event; for a log
    that is the right trade, and the outbox line still records the delivery.
    """

    def __init__(self, config: ChannelConfig, outbox: Outbox) -> None:
        import structlog  # here: the configuration imports this module, and commands read it

        self._config = config
        self._claims = OutboxChannel(config, outbox)
        self._log = structlog.get_logger("gatekeeper.notifications")

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        if not self._claims.deliver(notification, recipient, key):
            return False
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
        return True

    def close(self) -> None:
        self._claims.close()


def bind(context: ChannelContext) -> ChannelFactory:
    """Log channels claiming their keys in the worker's outbox."""
    return lambda config: LogChannel(config, context.outbox)


CHANNEL = ChannelType("log", LogSettings, bind)

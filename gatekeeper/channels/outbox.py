"""Channel type ``outbox`` (built in): each delivery one line of the worker's outbox file.

Every worker has the channel ``outbox``; no configuration defines it or another of its type.
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
from gatekeeper.channels.messages import DeliveryRecords

if TYPE_CHECKING:
    from gatekeeper.adapters.outbox import Outbox
    from gatekeeper.models.io import Notification, Recipient


class OutboxSettings(ChannelSettings):
    """The built-in ``outbox`` channel: nothing to configure."""

    type: Literal["outbox"] = "outbox"
    builtin: ClassVar[bool] = True


class OutboxChannel:
    """Writes each delivery as one line of the outbox: notification, recipient and channel."""

    def __init__(self, config: ChannelConfig, outbox: Outbox) -> None:
        self._outbox = outbox
        self._records = DeliveryRecords(config)

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        return self._outbox.append(key, self._records.record(notification, recipient))

    def close(self) -> None:
        self._outbox.sync()


def bind(context: ChannelContext) -> ChannelFactory:
    """Outbox channels writing to the worker's outbox."""
    return lambda config: OutboxChannel(config, context.outbox)


CHANNEL = ChannelType("outbox", OutboxSettings, bind)

"""Channel type ``outbox`` (built in): each delivery recorded in the send journal (the database,
exactly once across workers) and written as one line of the worker's outbox file.

Every worker has the channel ``outbox``; no configuration defines it or another of its type.
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
from gatekeeper.channels.messages import DeliveryRecords

if TYPE_CHECKING:
    from gatekeeper.channels.base import SendJournal
    from gatekeeper.models.io import Notification, Recipient


class OutboxSettings(ChannelSettings):
    """The built-in ``outbox`` channel: nothing to configure."""

    type: Literal["outbox"] = "outbox"
    builtin: ClassVar[bool] = True


class OutboxChannel:
    """Records each delivery (notification, recipient and channel) in the journal, once per key;
    the journal mirrors it to the outbox file."""

    def __init__(self, config: ChannelConfig, journal: SendJournal) -> None:
        self._journal = journal
        self._records = DeliveryRecords(config)

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        return self._journal.record(key, self._records.record(notification, recipient))

    def deliver_many(self, items: Sequence[tuple[Notification, Recipient, str]]) -> list[bool]:
        """:meth:`deliver` for a batch, recorded a hundred at a time (see
        :class:`~gatekeeper.channels.base.BatchChannel`)."""
        won = self._journal.record_many([(key, self._records.record(n, r)) for n, r, key in items])
        return [key in won for _, _, key in items]

    def close(self) -> None:
        self._journal.sync()


def bind(context: ChannelContext) -> ChannelFactory:
    """Outbox channels recording in the worker's journal."""
    return lambda config: OutboxChannel(config, context.journal)


CHANNEL = ChannelType("outbox", OutboxSettings, bind)

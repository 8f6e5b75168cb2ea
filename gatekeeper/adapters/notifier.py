"""The notifier: one notification, many recipients, each over the channel the policy routed it to.

Dispatch knows nothing about how a channel delivers. A channel is anything with
``deliver(notification, recipient, key) -> bool`` and ``close()``; a :class:`ChannelRegistry`
maps each :class:`~gatekeeper.models.enums.Channel` type to a factory that opens one for a
:class:`~gatekeeper.models.policy.ChannelConfig`. Webhook and e-mail channels plug in with
``registry.register(Channel.WEBHOOK, factory)``; nothing here changes.

Every delivery carries the key ``<notification key>:<recipient id>:<channel id>``, made from the
business and never from the attempt, and every channel deduplicates on it: a retried activity
re-sends only what did not go out the first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog

from gatekeeper.adapters.outbox import Outbox
from gatekeeper.errors import AdapterError, DeliveryError
from gatekeeper.models.enums import Channel
from gatekeeper.models.io import Delivery, Notification, NotifyRequest, NotifyResult, Recipient
from gatekeeper.models.policy import BUILTIN_CHANNELS, ChannelConfig

#: How many deliveries pass between two calls of the progress callback (activity heartbeats).
PROGRESS_EVERY = 100


class DeliveryChannel(Protocol):
    """One opened channel. Opened per dispatch, closed once after it."""

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        """Deliver unless ``key`` was delivered before.

        Returns:
            True if delivered now, False if ``key`` had already been delivered.

        Raises:
            DeliveryError: with ``retryable`` saying whether trying again can help.
        """
        ...

    def close(self) -> None:
        """Make what was delivered durable and release what the channel holds."""
        ...


#: Opens a channel for one configuration. Factories capture what they need (files, HTTP
#: clients, the settings' environment for secrets) when they are registered.
ChannelFactory = Callable[[ChannelConfig], DeliveryChannel]


def delivery_key(notification: Notification, recipient: Recipient) -> str:
    """The idempotency key of one delivery: notification, recipient and channel."""
    return f"{notification.idempotency_key}:{recipient.id}:{recipient.channel}"


class ChannelRegistry:
    """Channel types the notifier can open, each with its factory."""

    def __init__(self) -> None:
        self._factories: dict[Channel, ChannelFactory] = {}

    @classmethod
    def embedded(cls, outbox: Outbox) -> ChannelRegistry:
        """The embedded defaults: ``log`` and ``outbox``, both deduplicated through ``outbox``."""
        registry = cls()
        registry.register(Channel.LOG, lambda config: LogChannel(config, outbox))
        registry.register(Channel.OUTBOX, lambda config: OutboxChannel(config, outbox))
        return registry

    def register(self, kind: Channel, factory: ChannelFactory) -> None:
        """Make channel type ``kind`` available; a later registration replaces an earlier one."""
        self._factories[kind] = factory

    @property
    def kinds(self) -> frozenset[Channel]:
        return frozenset(self._factories)

    def open(self, config: ChannelConfig) -> DeliveryChannel:
        """Open a channel for ``config``.

        Raises:
            DeliveryError: (not retryable) no factory is registered for ``config.type``.
        """
        factory = self._factories.get(config.type)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise DeliveryError(
                f"channel {config.id!r} has type {config.type.value!r}, which this worker cannot "
                f"deliver (known: {known})",
                retryable=False,
            )
        return factory(config)


class Notifier:
    """Dispatches notifications to recipients over the channels of a :class:`ChannelRegistry`.

    Thread-safe as long as the channels are (the embedded ones are).
    """

    def __init__(self, channels: ChannelRegistry) -> None:
        self._channels = channels

    def notify(
        self, request: NotifyRequest, progress: Callable[[int], None] | None = None
    ) -> NotifyResult:
        """Deliver ``request.notification`` to every recipient, once per delivery key.

        Every recipient's channel is resolved before anything is sent, so a misconfigured
        channel fails the whole request without a partial fan-out. Channel ids not among
        ``request.channels`` fall back to the built-in ``log`` and ``outbox``.

        Args:
            request: the notification, its recipients and the channel configurations.
            progress: called with the number of deliveries done so far, every
                :data:`PROGRESS_EVERY` deliveries (activities heartbeat through it).

        Returns:
            One delivery per recipient, in order; ``duplicate`` marks keys delivered before.

        Raises:
            DeliveryError: a channel is unknown (not retryable) or failed.
        """
        configs = _configs_by_id(request.channels)
        for recipient in request.recipients:
            if recipient.channel not in configs:
                raise DeliveryError(
                    f"recipient {recipient.id!r} is routed to channel {recipient.channel!r}, "
                    "which is not configured",
                    retryable=False,
                )
        used = {r.channel: configs[r.channel] for r in request.recipients}
        channels: dict[str, DeliveryChannel] = {}
        try:
            for channel_id, config in used.items():
                channels[channel_id] = self._channels.open(config)
            deliveries = _dispatch(request, used, channels, progress)
        except BaseException:
            _close_all(channels.values(), quiet=True)  # the error in flight is the one to report
            raise
        _close_all(channels.values())
        return NotifyResult(deliveries=deliveries)


class OutboxChannel:
    """Writes each delivery as one line of the outbox: notification, recipient and channel."""

    def __init__(self, config: ChannelConfig, outbox: Outbox) -> None:
        self._config = config
        self._outbox = outbox
        self._dumped: dict[str, dict[str, Any]] = {}

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        return self._outbox.append(key, self._record(notification, recipient))

    def close(self) -> None:
        self._outbox.sync()

    def _record(self, notification: Notification, recipient: Recipient) -> dict[str, Any]:
        # A fan-out repeats one notification thousands of times: serialise it once.
        body = self._dumped.get(notification.idempotency_key)
        if body is None:
            body = self._dumped[notification.idempotency_key] = notification.model_dump(mode="json")
        return {
            "channel": self._config.id,
            "channel_type": self._config.type.value,
            "recipient": recipient.model_dump(mode="json"),
            "notification": body,
        }


class LogChannel:
    """Emits one structlog event per delivery.

    The key is claimed in the outbox (a line with ``channel_type`` ``log``) *before* the event
    is emitted, so a retried activity or a second worker never logs a delivery twice. The price
    is that a worker dying between the claim and the log line loses that one event; for a log
    that is the right trade, and the outbox line still records the delivery.
    """

    def __init__(self, config: ChannelConfig, outbox: Outbox) -> None:
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


def _configs_by_id(configs: Iterable[ChannelConfig]) -> dict[str, ChannelConfig]:
    # The request's configurations win over the built-ins they share an id with.
    return {c.id: c for c in (*BUILTIN_CHANNELS, *configs)}


def _dispatch(
    request: NotifyRequest,
    configs: dict[str, ChannelConfig],
    channels: dict[str, DeliveryChannel],
    progress: Callable[[int], None] | None,
) -> list[Delivery]:
    deliveries: list[Delivery] = []
    for done, recipient in enumerate(request.recipients, start=1):
        config = configs[recipient.channel]
        key = delivery_key(request.notification, recipient)
        sent = _deliver(channels[recipient.channel], request.notification, recipient, key)
        deliveries.append(
            Delivery(
                recipient=recipient.id,
                channel=config.id,
                channel_type=config.type,
                key=key,
                duplicate=not sent,
            )
        )
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
    return deliveries


def _deliver(
    channel: DeliveryChannel, notification: Notification, recipient: Recipient, key: str
) -> bool:
    try:
        return channel.deliver(notification, recipient, key)
    except AdapterError:
        raise
    except OSError as err:
        raise DeliveryError(f"delivery {key} failed: {err}") from err


def _close_all(channels: Iterable[DeliveryChannel], *, quiet: bool = False) -> None:
    """Close every channel; unless ``quiet``, report the ones that failed as one error."""
    errors: list[str] = []
    for channel in channels:
        try:
            channel.close()
        except (OSError, AdapterError) as err:
            errors.append(str(err))
    if errors and not quiet:
        raise DeliveryError(f"deliveries may not be durable: {'; '.join(errors)}")

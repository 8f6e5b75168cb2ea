"""The notifier: one notification, many recipients, each over the channel the policy routed it to.

A recipient names its channel; the notifier resolves the name against this worker alone: the
built-in ``log`` and ``outbox``, or a channel the worker's configuration defines
(``[channels.<name>]``, :data:`gatekeeper.channels.ConfiguredChannel`). Nothing in a request says
what a channel is. A name the worker does not define is reported back
(``NotifyResult.unconfigured``) and nothing is sent on it, nor anywhere else in its place.

Dispatch knows nothing about how a channel delivers. A channel is anything with
``deliver(notification, recipient, key) -> bool`` and ``close()``
(:class:`~gatekeeper.channels.DeliveryChannel`); a :class:`ChannelRegistry` maps each channel
type's name to a factory that opens one for a resolved :class:`~gatekeeper.channels.ChannelConfig`.
:meth:`ChannelRegistry.for_worker` binds the factory of every type of
:data:`gatekeeper.channels.CHANNEL_TYPES`; nothing here changes when a type is added.

Every delivery carries the key ``<notification key>:<recipient id>:<channel id>``, made from the
business and never from the attempt, and every channel deduplicates on it: a retried activity
re-sends only what did not go out the first time.

A recipient ``cohort:<id>`` stands for the partners of that cohort. When the notifier has a
:data:`CohortMembers` directory it delivers to each partner as ``partner:<id>`` instead (keyed per
partner), so a request naming one cohort can fan out to thousands of deliveries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gatekeeper.channels import (
    BUILTIN_TYPES,
    CHANNEL_TYPES,
    ChannelConfig,
    ChannelContext,
    ChannelFactory,
    ChannelSettings,
    DeliveryChannel,
    SendJournal,
    builtin_channel,
)
from gatekeeper.channels.messages import PARTNER_PREFIX, with_console_link
from gatekeeper.errors import AdapterError, DeliveryError
from gatekeeper.models.io import Delivery, Notification, NotifyRequest, NotifyResult, Recipient
from gatekeeper.models.status import GrantRecord

#: How many deliveries pass between two calls of the progress callback (activity heartbeats).
PROGRESS_EVERY = 100
#: ...and the longest the callback waits, so a slow channel still heartbeats.
PROGRESS_SECONDS = 1.0
#: Failures named in a :class:`~gatekeeper.errors.DeliveryError`'s message; the rest are counted.
MAX_REPORTED_FAILURES = 5
COHORT_PREFIX = "cohort:"


@dataclass(frozen=True)
class Contact:
    """A partner a cohort notification reaches (partners have an id and a name, no address)."""

    id: str
    name: str = ""
    email: str | None = None


#: ``(release_id, cohort_id) -> partners``: who a ``cohort:<id>`` recipient stands for.
CohortMembers = Callable[[str, str], list[Contact]]


def resolve_channel(name: str, configured: Mapping[str, ChannelSettings]) -> ChannelConfig | None:
    """The channel ``name`` on this worker, or None if the worker does not define it."""
    builtin = builtin_channel(name)
    if builtin is not None:
        return builtin
    settings = configured.get(name)
    return None if settings is None else ChannelConfig(name, settings)


def delivery_key(notification: Notification, recipient: Recipient) -> str:
    """The idempotency key of one delivery: notification, recipient and channel."""
    return f"{notification.idempotency_key}:{recipient.id}:{recipient.channel}"


class ChannelRegistry:
    """Channel types the notifier can open, each with its factory."""

    def __init__(self) -> None:
        self._factories: dict[str, ChannelFactory] = {}

    @classmethod
    def for_worker(cls, context: ChannelContext) -> ChannelRegistry:
        """Every channel type of :data:`~gatekeeper.channels.CHANNEL_TYPES`, bound to what the
        worker lends its channels (``context``: journal, secrets, egress rules)."""
        registry = cls()
        for name, channel_type in CHANNEL_TYPES.items():
            registry.register(name, channel_type.bind(context))
        return registry

    @classmethod
    def embedded(cls, journal: SendJournal) -> ChannelRegistry:
        """The embedded defaults: ``log`` and ``outbox``, both deduplicated through ``journal``."""
        context = ChannelContext(journal=journal)
        registry = cls()
        for name in sorted(BUILTIN_TYPES):
            registry.register(name, CHANNEL_TYPES[name].bind(context))
        return registry

    def register(self, kind: str, factory: ChannelFactory) -> None:
        """Make channel type ``kind`` available; a later registration replaces an earlier one."""
        self._factories[kind] = factory

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._factories)

    def open(self, config: ChannelConfig) -> DeliveryChannel:
        """Open a channel for ``config``.

        Raises:
            DeliveryError: (not retryable) no factory is registered for ``config.type``, or the
                factory found the configuration unusable.
        """
        factory = self._factories.get(config.type)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise DeliveryError(
                f"channel {config.id!r} has type {config.type!r}, which this worker cannot "
                f"deliver (known: {known})",
                retryable=False,
            )
        return factory(config)


class Notifier:
    """Dispatches notifications to recipients over the channels of a :class:`ChannelRegistry`.

    Thread-safe as long as the channels and the cohort directory are (the embedded ones are).

    Args:
        channels: the channel types this worker can deliver over.
        configured: the channels the worker's configuration defines, by name
            (``Settings.config.channels``); ``log`` and ``outbox`` are always there.
        cohorts: who a ``cohort:<id>`` recipient stands for; without it a cohort is delivered
            to as one recipient.
        console_url: the web console's base URL (``[console] url``): a notification that asks
            someone to act carries the link to the release's page there (see
            :func:`~gatekeeper.channels.messages.with_console_link`); ``None``, no link.
    """

    def __init__(
        self,
        channels: ChannelRegistry,
        *,
        configured: Mapping[str, ChannelSettings] | None = None,
        cohorts: CohortMembers | None = None,
        console_url: str | None = None,
    ) -> None:
        self._channels = channels
        self._configured = dict(configured or {})
        self._cohorts = cohorts
        self._console_url = console_url

    def notify(
        self, request: NotifyRequest, progress: Callable[[int], None] | None = None
    ) -> NotifyResult:
        """Deliver ``request.notification`` to every recipient, once per delivery key.

        Every recipient's channel is resolved by name against this worker before anything is
        sent. A name the worker does not define is skipped and reported in
        ``NotifyResult.unconfigured``: nothing is sent on it, and nothing is sent anywhere else
        instead. A channel that cannot be opened (its secret is not set) fails the whole request
        without a partial fan-out. A failed delivery does not stop the others; once a channel
        fails in a way that may pass, the rest of its deliveries wait for the next attempt.

        Args:
            request: the notification and its recipients, each naming a channel.
            progress: called with the number of deliveries done so far, every
                :data:`PROGRESS_EVERY` deliveries or :data:`PROGRESS_SECONDS` (activities
                heartbeat through it).

        Returns:
            One delivery per recipient on a defined channel (cohorts expanded), in order;
            ``duplicate`` marks keys delivered before; the names of undefined channels.

        Raises:
            DeliveryError: a channel's type cannot be delivered or its configuration is unusable
                (not retryable), or some deliveries failed: retryable if any of them may succeed
                later, the rest having been delivered.
        """
        configs: dict[str, ChannelConfig] = {}
        unconfigured: set[str] = set()
        for name in {r.channel for r in request.recipients}:
            config = resolve_channel(name, self._configured)
            if config is None:
                unconfigured.add(name)
            else:
                configs[name] = config
        routed = [r for r in request.recipients if r.channel in configs]
        recipients = self._expand(request.notification.release_id, routed)
        used = {r.channel: configs[r.channel] for r in recipients}
        channels: dict[str, DeliveryChannel] = {}
        try:
            for channel_id, config in used.items():
                channels[channel_id] = self._channels.open(config)
            linked = with_console_link(request.notification, self._console_url)
            outcome = _dispatch(
                request.notification, recipients, used, channels, progress, linked=linked
            )
        except BaseException:
            _close_all(channels.values(), quiet=True)  # the error in flight is the one to report
            raise
        _close_all(channels.values())
        outcome.raise_for_failures(request.notification, len(recipients))
        return NotifyResult(deliveries=outcome.deliveries, unconfigured=sorted(unconfigured))

    def _expand(self, release_id: str, recipients: list[Recipient]) -> list[Recipient]:
        """Recipients with each cohort replaced by its partners, once per (id, channel)."""
        if self._cohorts is None:
            return recipients
        members: dict[str, list[Contact]] = {}
        found: dict[tuple[str, str], Recipient] = {}
        for recipient in recipients:
            if not recipient.id.startswith(COHORT_PREFIX):
                found.setdefault((recipient.id, recipient.channel), recipient)
                continue
            cohort = recipient.id.removeprefix(COHORT_PREFIX)
            if cohort not in members:
                members[cohort] = self._cohorts(release_id, cohort)
            for contact in members[cohort]:
                partner = f"{PARTNER_PREFIX}{contact.id}"
                found.setdefault(
                    (partner, recipient.channel),
                    Recipient(
                        id=partner,
                        name=contact.name,
                        email=contact.email,
                        channel=recipient.channel,
                    ),
                )
        return list(found.values())


def granted_partners(list_grants: Callable[[str], list[GrantRecord]]) -> CohortMembers:
    """A cohort directory over a release's grants: a cohort's members are the partners the
    release granted access in that cohort, whatever the grant's status now.

    Partners that were never granted never hear about the release, so an unreleased model is not
    announced to organisations that were not cleared to see it; before the access stage a cohort
    has no members for the release. A partner whose grant was revoked or suspended still hears
    what happens next (that is how it learns of the revocation).

    Args:
        list_grants: every grant of a release (e.g. ``AccessRegistry.list_grants``).
    """

    def members(release_id: str, cohort_id: str) -> list[Contact]:
        seen: dict[str, Contact] = {}
        for grant in list_grants(release_id):
            if grant.cohort == cohort_id and grant.partner_id not in seen:
                seen[grant.partner_id] = Contact(id=grant.partner_id, name=grant.partner_name)
        return list(seen.values())

    return members


@dataclass
class _Failure:
    recipient: str
    channel: str
    error: str
    retryable: bool


@dataclass
class _Outcome:
    deliveries: list[Delivery]
    failures: list[_Failure]
    deferred: int

    def raise_for_failures(self, notification: Notification, total: int) -> None:
        if not self.failures and not self.deferred:
            return
        retryable = self.deferred > 0 or any(f.retryable for f in self.failures)
        named = "; ".join(
            f"{f.recipient} on {f.channel}: {f.error}"
            for f in self.failures[:MAX_REPORTED_FAILURES]
        )
        more = len(self.failures) - MAX_REPORTED_FAILURES
        if more > 0:
            named += f"; and {more} more"
        sent = sum(1 for d in self.deliveries if not d.duplicate)
        earlier = len(self.deliveries) - sent
        deferred = f", {self.deferred} deferred to the next attempt" if self.deferred else ""
        raise DeliveryError(
            f"{len(self.failures)} of {total} deliveries of {notification.idempotency_key} "
            f"failed ({named}); {sent} delivered now, {earlier} earlier{deferred}",
            retryable=retryable,
        )


def _dispatch(
    notification: Notification,
    recipients: list[Recipient],
    configs: dict[str, ChannelConfig],
    channels: dict[str, DeliveryChannel],
    progress: Callable[[int], None] | None,
    *,
    linked: Notification | None = None,
) -> _Outcome:
    """Deliver to ``recipients`` a hundred at a time (:data:`PROGRESS_EVERY`): within each
    hundred, a channel that takes batches (:class:`~gatekeeper.channels.base.BatchChannel`)
    gets its share in one call, the others one delivery at a time. Deliveries are reported in
    the recipients' order."""
    outcome = _Outcome(deliveries=[], failures=[], deferred=0)
    # A channel that failed in a way that may pass (down, throttling) is not hammered with the
    # rest of the fan-out: its deliveries wait for the activity's next attempt.
    paused: set[str] = set()
    clock = _Progress(progress)
    for start in range(0, len(recipients), PROGRESS_EVERY):
        chunk = recipients[start : start + PROGRESS_EVERY]
        shares: dict[str, list[int]] = {}
        for index, recipient in enumerate(chunk):
            shares.setdefault(recipient.channel, []).append(index)
        sent: dict[int, bool] = {}
        for channel_id, indices in shares.items():
            config, channel = configs[channel_id], channels[channel_id]
            items = [
                (
                    _shown(notification, linked, chunk[i]),
                    chunk[i],
                    delivery_key(notification, chunk[i]),
                )
                for i in indices
            ]
            batch = getattr(channel, "deliver_many", None)
            if channel_id in paused:
                outcome.deferred += len(items)
            elif batch is not None:
                try:
                    flags = _deliver_batch(batch, items)
                except DeliveryError as err:
                    outcome.failures.append(
                        _Failure(items[0][1].id, config.id, str(err), retryable=err.retryable)
                    )
                    if err.retryable:
                        paused.add(channel_id)
                        outcome.deferred += len(items) - 1
                    else:
                        outcome.failures += [
                            _Failure(r.id, config.id, str(err), retryable=False)
                            for _, r, _ in items[1:]
                        ]
                else:
                    sent.update(zip(indices, flags, strict=True))
                clock.tick(start + len(sent))
            else:
                for i, (shown, recipient, key) in zip(indices, items, strict=True):
                    if channel_id in paused:
                        outcome.deferred += 1
                        continue
                    try:
                        sent[i] = _deliver(channel, shown, recipient, key)
                    except DeliveryError as err:
                        outcome.failures.append(
                            _Failure(recipient.id, config.id, str(err), retryable=err.retryable)
                        )
                        if err.retryable:
                            paused.add(channel_id)
                    clock.tick(start + len(sent))
        for index, recipient in enumerate(chunk):
            if index in sent:
                config = configs[recipient.channel]
                outcome.deliveries.append(
                    Delivery(
                        recipient=recipient.id,
                        channel=config.id,
                        channel_type=config.type,
                        key=delivery_key(notification, recipient),
                        duplicate=not sent[index],
                    )
                )
        clock.done(start + len(chunk))
    return outcome


def _shown(
    notification: Notification, linked: Notification | None, recipient: Recipient
) -> Notification:
    """People get the console link (when there is one); partners never do."""
    partner = recipient.id.startswith(PARTNER_PREFIX)
    return notification if partner or linked is None else linked


class _Progress:
    """Calls ``progress`` every :data:`PROGRESS_EVERY` deliveries, and at least every
    :data:`PROGRESS_SECONDS` while a slow channel works through a hundred."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self._progress = progress
        self._reported = time.monotonic()

    def tick(self, done: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if now - self._reported >= PROGRESS_SECONDS:
            self._progress(done)
            self._reported = now

    def done(self, done: int) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if done % PROGRESS_EVERY == 0 or now - self._reported >= PROGRESS_SECONDS:
            self._progress(done)
            self._reported = now


def _deliver_batch(
    batch: Callable[[list[tuple[Notification, Recipient, str]]], list[bool]],
    items: list[tuple[Notification, Recipient, str]],
) -> list[bool]:
    try:
        return batch(items)
    except DeliveryError:
        raise
    except AdapterError as err:
        raise DeliveryError(str(err), retryable=err.retryable) from err
    except OSError as err:
        raise DeliveryError(f"{len(items)} deliveries failed: {err}") from err


def _deliver(
    channel: DeliveryChannel, notification: Notification, recipient: Recipient, key: str
) -> bool:
    try:
        return channel.deliver(notification, recipient, key)
    except DeliveryError:
        raise
    except AdapterError as err:
        raise DeliveryError(str(err), retryable=err.retryable) from err
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

"""What every channel type is made of: its configuration, what it opens, what it is given.

A channel type is one module in :mod:`gatekeeper.channels` holding

- its configuration model, a subclass of :class:`ChannelSettings` with ``type: Literal[...]``
  (a member of the discriminated union the worker's ``[channels.<name>]`` sections validate
  against), with the type's own validation beside its fields;
- its factory, ``bind(context) -> ChannelFactory``: given what the worker lends its channels (a
  :class:`ChannelContext`: the send journal, the environment holding secrets, the egress
  rules), a function opening one :class:`DeliveryChannel` per dispatch;
- one :class:`ChannelType` record naming the two, listed in the registry
  (``gatekeeper/channels/__init__.py``).

Light on purpose: the worker's configuration imports the configuration models, and ``gatekeeper``
commands read that configuration; HTTP and SMTP stacks are imported only when a channel opens.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, TypeVar

from pydantic import AfterValidator, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from gatekeeper.egress import EgressRules
from gatekeeper.errors import DeliveryError
from gatekeeper.models.base import Model

if TYPE_CHECKING:  # the configuration imports this module; the adapters stay off its path
    from gatekeeper.adapters.deliveries import DeliveryStore
    from gatekeeper.adapters.outbox import Outbox
    from gatekeeper.models.io import Notification, Recipient

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


def no_control(value: str) -> str:
    """``value``, refused if it holds a control character (it could forge a header or a line)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise PydanticCustomError("control", "must not contain control characters")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise PydanticCustomError(
            "secret_env",
            "must be the name of an environment variable (letters, digits, _), "
            "not the secret itself",
        )
    return value


#: The *name* of a variable in the worker's environment holding a channel's secret; its value is
#: read when the channel opens and never written anywhere (so left out of the repr).
#: Declare it with ``Field(repr=False)``.
SecretEnv = Annotated[str, StringConstraints(max_length=200), AfterValidator(_env_name)]


class ChannelSettings(Model):
    """One channel as the operator of the worker defined it: the base of every type's model.

    A subclass declares ``type: Literal["<its type>"]`` and its fields; fields without a default
    are what the type needs. A field the type does not have is refused as ``<field> does not
    apply to <type> channels``, a missing one as ``<type> channels need <field>``, before any
    field is checked. Destinations and variable names stay out of the repr (declare them with
    ``Field(repr=False)``), so a stray log line of the settings shows only the type.
    """

    type: str

    #: Built-in types have exactly one channel, named after the type, which no configuration
    #: defines (``log``, ``outbox``).
    builtin: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _fields_of_the_type(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        kind = data.get("type", "?")
        for name, info in cls.model_fields.items():
            if info.is_required() and name not in data:
                raise PydanticCustomError(
                    "channel", "{kind} channels need {name}", {"kind": kind, "name": name}
                )
        for name in data:
            if name not in cls.model_fields:
                raise PydanticCustomError(
                    "channel",
                    "{name} does not apply to {kind} channels",
                    {"kind": kind, "name": str(name)},
                )
        return data

    def destinations(self) -> list[tuple[str, str]]:
        """``(field, host)`` for every host the channel connects to, checked against the
        worker's ``[egress]`` rules when the configuration loads (none by default)."""
        return []

    def secret_variables(self) -> dict[str, str]:
        """``{field: variable name}`` for every secret the channel reads from the worker's
        environment; a worker does not start while one of them is unset (none by default)."""
        return {}


@dataclass(frozen=True)
class ChannelConfig:
    """A channel name as this worker resolved it: a built-in, or one its configuration defines.

    Attributes:
        id: the channel's name (what policies route to).
        settings: the worker's definition (for a built-in, its type's defaults).
    """

    id: str
    settings: ChannelSettings

    @property
    def type(self) -> str:
        """How it delivers: the channel type's name."""
        return self.settings.type


S = TypeVar("S", bound=ChannelSettings)


def settings_of(config: ChannelConfig, kind: type[S]) -> S:
    """``config``'s settings, which a factory of ``kind``'s type was asked to open.

    Raises:
        DeliveryError: (not retryable) the settings are of another type.
    """
    if not isinstance(config.settings, kind):
        raise DeliveryError(
            f"channel {config.id!r} has type {config.type!r}, not the type this factory opens",
            retryable=False,
        )
    return config.settings


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


class BatchChannel(DeliveryChannel, Protocol):
    """A channel that can also deliver a batch at once (the notifier hands it up to a hundred
    deliveries in one call): ``log``, ``outbox`` and ``file`` record their batch in the journal
    with a few statements instead of a transaction per delivery."""

    def deliver_many(self, items: Sequence[tuple[Notification, Recipient, str]]) -> list[bool]:
        """:meth:`deliver` each ``(notification, recipient, key)``; True for each delivered now.

        Raises:
            DeliveryError: the batch could not be recorded; none of it counts as delivered.
        """
        ...


#: Opens a channel for one configuration. Factories capture what they need (files, HTTP
#: clients, the environment for secrets) when they are bound to a :class:`ChannelContext`.
ChannelFactory = Callable[[ChannelConfig], DeliveryChannel]


class SendJournal:
    """Exactly-once bookkeeping shared by every channel, across workers and hosts.

    ``deliveries`` is the database's send journal (:class:`~gatekeeper.adapters.deliveries.
    DeliveryStore`): a key is recorded there once the channel accepted it, by exactly one writer,
    so a retry (on any worker) skips it. Channels that send off the machine (webhook, e-mail)
    first *claim* the key there; finding a claim but no delivery means an earlier attempt died or
    failed mid-send, and the far side may already have the message: the send is repeated with
    the same key (receivers deduplicate on it) and marked as a possible redelivery.

    ``outbox`` (optional) is the worker's human-readable outbox file: each delivery this worker
    recorded gets one line there, after the database has it. It is a mirror, never consulted.
    """

    def __init__(self, deliveries: DeliveryStore, outbox: Outbox | None = None) -> None:
        self.deliveries = deliveries
        self.outbox = outbox

    def already_delivered(self, key: str) -> bool:
        return self.deliveries.delivered(key)

    def claim(self, key: str, channel: ChannelConfig) -> bool:
        """Record that ``key`` is about to be sent; False if an earlier attempt claimed it."""
        return self.deliveries.claim(key, channel=channel.id, channel_type=channel.type)

    def record(self, key: str, record: dict[str, Any]) -> bool:
        """Record ``key`` as delivered (and mirror it to the outbox file); False if some
        writer recorded it before."""
        if not self.deliveries.record(key, record):
            return False
        if self.outbox is not None:
            self.outbox.append(key, record)
        return True

    def delivered_among(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are recorded as delivered (one look-up for a batch)."""
        return self.deliveries.delivered_among(keys)

    def record_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
        """Record a batch (and mirror the ones recorded now to the outbox file, in order); the
        keys this call recorded."""
        won = self.deliveries.record_many(items)
        if self.outbox is not None and won:
            self.outbox.append_many([(k, r) for k, r in items if k in won])
        return won

    def sync(self) -> None:
        """Make the outbox file's lines durable (the database's are once committed)."""
        if self.outbox is not None:
            self.outbox.sync()


@dataclass
class ChannelContext:
    """What a worker lends the channels it opens.

    Attributes:
        journal: every channel's deliveries (the database) and their outbox-file mirror.
        env: the worker's environment: secrets are read from it when a channel opens, by the
            variable name its configuration gives, and never written anywhere.
        egress: where the worker may connect besides public addresses.
        resources: shared things the factories open once (an HTTP client); closed with the
            worker's adapters (:meth:`close`).
    """

    journal: SendJournal
    env: Mapping[str, str] = field(default_factory=dict)
    egress: EgressRules = field(default_factory=EgressRules)
    resources: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        """Release what the factories opened."""
        self.resources.close()


@dataclass(frozen=True)
class ChannelType:
    """A kind of channel, as the registry lists it.

    Attributes:
        name: the value of ``type`` in the configuration (and ``channel_type`` of its deliveries).
        settings: its configuration model.
        bind: its factory, given the worker's :class:`ChannelContext`.
    """

    name: str
    settings: type[ChannelSettings]
    bind: Callable[[ChannelContext], ChannelFactory]

    def __post_init__(self) -> None:
        declared = self.settings.model_fields["type"].annotation
        if getattr(declared, "__args__", None) != (self.name,):
            raise TypeError(f"{self.settings.__name__}.type must be Literal[{self.name!r}]")

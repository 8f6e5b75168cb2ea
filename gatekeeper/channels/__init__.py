"""Notification channels: one module per channel type, listed in :data:`CHANNEL_TYPES`.

A policy routes events to channel *names*; what a name is, the worker decides: the built-in
``log`` and ``outbox``, or a ``[channels.<name>]`` section of its configuration whose ``type``
picks one of the types below (a pydantic discriminated union on ``type``,
:data:`ConfiguredChannel`). Each type's module holds its configuration model and that model's
validation, and its factory (see :mod:`gatekeeper.channels.base`); the notifier
(:mod:`gatekeeper.adapters.notifier`) opens channels through the factories.

Adding a channel type is one module here and one line in :data:`CHANNEL_TYPES`.
"""

from __future__ import annotations

import functools
import operator
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from gatekeeper.channels import email, file, log, outbox, webhook
from gatekeeper.channels.base import (
    ChannelConfig,
    ChannelContext,
    ChannelFactory,
    ChannelSettings,
    ChannelType,
    DeliveryChannel,
    SendJournal,
)

#: Every channel type, by the name its configuration's ``type`` gives.
CHANNEL_TYPES: dict[str, ChannelType] = {
    channel.name: channel
    for channel in (
        log.CHANNEL,
        outbox.CHANNEL,
        webhook.CHANNEL,
        email.CHANNEL,
        file.CHANNEL,
    )
}

#: Types with exactly one channel each, named after the type, that every worker has.
BUILTIN_TYPES = frozenset(name for name, t in CHANNEL_TYPES.items() if t.settings.builtin)
#: Types a ``[channels.<name>]`` section may define.
CONFIGURABLE_TYPES = tuple(sorted(set(CHANNEL_TYPES) - BUILTIN_TYPES))

if TYPE_CHECKING:
    ConfiguredChannel = ChannelSettings
else:
    #: One ``[channels.<name>]`` section: the configuration model its ``type`` names.
    ConfiguredChannel = Annotated[
        functools.reduce(operator.or_, (CHANNEL_TYPES[n].settings for n in CONFIGURABLE_TYPES)),
        Field(discriminator="type"),
    ]


def type_problem(section: object) -> str | None:
    """Why ``section`` (one ``[channels.<name>]`` table, unvalidated) names no type a
    configuration may define, or None if it names one."""
    if not isinstance(section, dict):
        return None  # the union reports what it is instead
    kind = section.get("type")
    known = ", ".join(CONFIGURABLE_TYPES)
    if kind is None:
        return f"is missing (one of {known})"
    if not isinstance(kind, str) or kind not in CHANNEL_TYPES:
        return f"{str(kind)[:40]!r} is not a channel type (one of {known})"
    if kind in BUILTIN_TYPES:
        return f"{kind!r} is built in: route to the channel {kind!r} itself (or use {known})"
    return None


def builtin_channel(name: str) -> ChannelConfig | None:
    """The built-in channel ``name`` (``log``, ``outbox``), or None if there is none."""
    if name not in BUILTIN_TYPES:
        return None
    return ChannelConfig(name, CHANNEL_TYPES[name].settings.model_validate({}))


__all__ = [
    "BUILTIN_TYPES",
    "CHANNEL_TYPES",
    "CONFIGURABLE_TYPES",
    "ChannelConfig",
    "ChannelContext",
    "ChannelFactory",
    "ChannelSettings",
    "ChannelType",
    "ConfiguredChannel",
    "DeliveryChannel",
    "SendJournal",
    "builtin_channel",
    "type_problem",
]

"""The channel registry: every type is one module listed once, and everything that knows about
channel types (the configuration's union, the worker's factories, the built-in names) is derived
from that list."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from gatekeeper.adapters.notifier import ChannelRegistry
from gatekeeper.channels import (
    BUILTIN_TYPES,
    CHANNEL_TYPES,
    CONFIGURABLE_TYPES,
    ChannelConfig,
    ChannelContext,
    ChannelSettings,
    ChannelType,
)
from gatekeeper.channels.email import EmailSettings
from gatekeeper.config import WorkerConfig
from gatekeeper.errors import DeliveryError
from gatekeeper.models.policy import BUILTIN_CHANNELS
from tests.journals import journal_at

pytestmark = pytest.mark.usefixtures("journals")


def context(tmp_path: Path) -> ChannelContext:
    return ChannelContext(journal=journal_at(tmp_path / "outbox.jsonl"))


class TestRegistry:
    """The configuration accepts exactly the registered types that are not built in; a worker
    binds a factory for every registered type; the built-in types are the channel names every
    policy may route to without configuration."""

    def test_the_configuration_union_is_the_registered_types(self) -> None:
        schema: dict[str, Any] = WorkerConfig.model_json_schema()
        [channels] = schema["properties"]["channels"]["patternProperties"].values()

        assert set(channels["discriminator"]["mapping"]) == set(CONFIGURABLE_TYPES)
        assert set(CONFIGURABLE_TYPES) | BUILTIN_TYPES == set(CHANNEL_TYPES)
        assert {"webhook", "email"} <= set(CONFIGURABLE_TYPES)

    def test_a_worker_binds_every_type(self, tmp_path: Path) -> None:
        bound = context(tmp_path)
        try:
            assert ChannelRegistry.for_worker(bound).kinds == set(CHANNEL_TYPES)
        finally:
            bound.close()

    def test_built_in_types_are_the_built_in_channel_names(self) -> None:
        assert set(BUILTIN_CHANNELS) == BUILTIN_TYPES

    def test_a_type_is_named_by_its_settings(self) -> None:
        class PagerSettings(ChannelSettings):
            type: Literal["pager"]

        with pytest.raises(TypeError, match=r"PagerSettings.type must be Literal\['sms'\]"):
            ChannelType("sms", PagerSettings, lambda ctx: lambda config: None)  # type: ignore[arg-type,return-value]


class TestFactoriesCheckTheirType:
    """A factory handed another type's settings refuses to open, once and for good (not retried),
    rather than reading fields the settings do not have."""

    def test_wrong_settings(self, tmp_path: Path) -> None:
        bound = context(tmp_path)
        email = EmailSettings(type="email", smtp_host="smtp.lab.example", sender="gk@lab.example")
        try:
            factory = CHANNEL_TYPES["webhook"].bind(bound)
            with pytest.raises(DeliveryError) as caught:
                factory(ChannelConfig("hook", email))
        finally:
            bound.close()

        assert str(caught.value) == (
            "channel 'hook' has type 'email', not the type this factory opens"
        )
        assert not caught.value.retryable

"""Channel type ``webhook``: each delivery POSTed as signed JSON to the configured URL.

Configured by the operator of the worker::

    [channels.security-hook]
    type = "webhook"
    url = "https://hooks.example.com/gatekeeper"   # http or https, no credentials, no #fragment
    secret_env = "GK_HOOK_SECRET"                   # required: webhooks are always signed

The sending itself (signatures, the egress-checked HTTP client, retries) is
:mod:`gatekeeper.adapters.webhook`, imported when a webhook channel is first bound.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from gatekeeper.channels.base import (
    ChannelContext,
    ChannelFactory,
    ChannelSettings,
    ChannelType,
    SecretEnv,
    no_control,
)
from gatekeeper.egress import is_host_name_or_address


class WebhookSettings(ChannelSettings):
    """A webhook: ``url`` (http or https, no credentials in it) and ``secret_env`` (the HMAC key's
    variable; webhooks are always signed)."""

    type: Literal["webhook"]
    url: str = Field(max_length=2000, repr=False)
    secret_env: SecretEnv = Field(repr=False)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        no_control(value)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise PydanticCustomError("url", "must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise PydanticCustomError(
                "url", "must not carry credentials; webhooks are signed with secret_env"
            )
        if not parts.hostname or not is_host_name_or_address(parts.hostname):
            raise PydanticCustomError("url", "must name a host")
        try:
            parts.port  # noqa: B018 - raises on a port out of range or not a number
        except ValueError:
            raise PydanticCustomError("url", "has an invalid port") from None
        if parts.fragment:
            raise PydanticCustomError("url", "must not have a #fragment")
        return value

    @property
    def host(self) -> str:
        """Where the channel connects: the URL's host."""
        return urlsplit(self.url).hostname or ""

    def destinations(self) -> list[tuple[str, str]]:
        return [("url", self.host)]

    def secret_variables(self) -> dict[str, str]:
        return {"secret_env": self.secret_env}


def bind(context: ChannelContext) -> ChannelFactory:
    """Webhook channels sharing one egress-checked HTTP client, closed with the context, with
    their secrets read from the context's environment."""
    from gatekeeper.adapters.webhook import webhook_client, webhook_factory

    client = context.resources.enter_context(webhook_client(context.egress))
    return webhook_factory(context.journal, context.env, client=client)


CHANNEL = ChannelType("webhook", WebhookSettings, bind)

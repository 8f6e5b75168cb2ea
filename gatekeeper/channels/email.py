"""Channel type ``email``: one plain-text message per delivery over SMTP.

Configured by the operator of the worker::

    [channels.reviewers-mail]
    type = "email"
    smtp_host = "smtp.example.com"
    smtp_port = 587                  # optional: 25 by default; 465 is TLS from the first byte
    sender = "gatekeeper@example.com"
    secret_env = "GK_SMTP_LOGIN"     # optional: "user:password", or a password for sender

The sending itself (STARTTLS, the egress-checked connection, message ids) is
:mod:`gatekeeper.adapters.email`, imported when an e-mail channel is first bound.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Literal

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


class EmailSettings(ChannelSettings):
    """An SMTP server (``smtp_host``, ``smtp_port``), the ``sender`` address, and optionally
    ``secret_env`` for SMTP credentials."""

    type: Literal["email"]
    smtp_host: str = Field(max_length=253, repr=False)
    sender: str = Field(max_length=200, repr=False)
    smtp_port: int | None = Field(default=None, ge=1, le=65535, repr=False)
    secret_env: SecretEnv | None = Field(default=None, repr=False)

    @field_validator("smtp_host")
    @classmethod
    def _smtp_host(cls, value: str) -> str:
        if not is_host_name_or_address(value):
            raise PydanticCustomError("smtp_host", "must be a host name or an IP address")
        return value

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        no_control(value)
        _, address = parseaddr(value)
        if "@" not in address or any(c.isspace() for c in address):
            raise PydanticCustomError("sender", "must be an e-mail address")
        return value

    @property
    def host(self) -> str:
        """Where the channel connects: the SMTP host."""
        return self.smtp_host

    def destinations(self) -> list[tuple[str, str]]:
        return [("smtp_host", self.smtp_host)]

    def secret_variables(self) -> dict[str, str]:
        return {} if self.secret_env is None else {"secret_env": self.secret_env}


def bind(context: ChannelContext) -> ChannelFactory:
    """E-mail channels connecting within the context's egress rules, with their credentials
    read from its environment."""
    from gatekeeper.adapters.email import email_factory

    return email_factory(context.journal, context.env, egress=context.egress)


CHANNEL = ChannelType("email", EmailSettings, bind)

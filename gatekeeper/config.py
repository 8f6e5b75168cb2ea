"""The worker's own configuration: what no policy, spec or payload may choose.

A policy routes events to channel *names*; what a channel is (its URL, SMTP host, sender, the
variable holding its secret), which destinations the worker may reach, and which evidence it may
read are decided here, by whoever runs the worker. The file is TOML, named by
``GATEKEEPER_CONFIG`` (default: ``gatekeeper.toml`` in the data directory, if it exists)::

    [channels.security-webhook]
    type = "webhook"
    url = "https://hooks.example.com/gatekeeper"
    secret_env = "GATEKEEPER_WEBHOOK_SECRET"    # the variable's *name*; its value stays in the env

    [channels.reviewers-mail]
    type = "email"
    smtp_host = "smtp.example.com"
    smtp_port = 587
    sender = "gatekeeper@example.com"
    secret_env = "GATEKEEPER_SMTP_CREDENTIALS"

    [egress]
    # Loopback, link-local, private and metadata addresses are refused unless listed here.
    allow_hosts = []

    [evidence]
    roots = ["/srv/evidence"]        # besides the data directory
    schemes = ["file"]
    max_bytes = 1073741824
    hash_timeout_seconds = 120

Nothing here is ever copied into a workflow's history, a log line or an error message except a
channel's *name*.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from gatekeeper.errors import ConfigError
from gatekeeper.models.base import Identifier, Model

CONFIG_FILE_NAME = "gatekeeper.toml"
#: Evidence files larger than this are refused unless the configuration says otherwise (1 GiB).
DEFAULT_EVIDENCE_MAX_BYTES = 1 << 30
#: How long hashing one release's evidence may take before it is refused.
DEFAULT_HASH_TIMEOUT_SECONDS = 120.0


class ChannelSettings(Model):
    """One delivery channel, as the operator of the worker defined it."""

    type: Literal["webhook", "email"]
    url: str | None = Field(default=None, max_length=2000)
    secret_env: str | None = Field(default=None, max_length=200)
    smtp_host: str | None = Field(default=None, max_length=253)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    sender: str | None = Field(default=None, max_length=200)


class EgressSettings(Model):
    """Where the worker may send requests besides public addresses."""

    allow_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="host names or IP addresses (or CIDR ranges) otherwise refused: loopback, "
        "link-local, private and cloud metadata addresses",
    )


class EvidenceSettings(Model):
    """What evidence and artifact URIs the worker reads, and how much of them."""

    roots: list[Path] = Field(default_factory=list, max_length=100)
    schemes: list[Literal["file"]] = Field(default_factory=lambda: ["file"])
    max_bytes: int = Field(default=DEFAULT_EVIDENCE_MAX_BYTES, ge=1)
    hash_timeout_seconds: float = Field(default=DEFAULT_HASH_TIMEOUT_SECONDS, gt=0)


class WorkerConfig(Model):
    """The whole configuration file. Every section is optional."""

    channels: dict[Identifier, ChannelSettings] = Field(default_factory=dict)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)


def load_worker_config(path: Path | None, *, required: bool = False) -> WorkerConfig:
    """Read and validate the configuration file at ``path``.

    A missing file gives the empty configuration unless ``required`` (the path was named
    explicitly). Every problem is a one-line :class:`ConfigError` naming the file and the field.
    """
    if path is None or not path.exists():
        if required and path is not None:
            raise ConfigError(f"{path}: no such configuration file")
        return WorkerConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the configuration file ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    try:
        return WorkerConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None

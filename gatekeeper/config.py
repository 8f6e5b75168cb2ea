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
    roots = ["/srv/evidence"]        # besides the data directory; absolute paths
    schemes = ["file", "https", "http", "s3", "gs"]   # file: read under the roots; others unverified
    max_bytes = 1073741824           # per file
    hash_timeout_seconds = 120       # for all of one release's evidence

Nothing here is ever copied into a workflow's history, a log line or an error message except a
channel's *name*.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, ValidationError

from gatekeeper.errors import ConfigError
from gatekeeper.models.base import Identifier, Model

CONFIG_FILE_NAME = "gatekeeper.toml"
#: Evidence files larger than this are refused unless the configuration says otherwise (1 GiB).
DEFAULT_EVIDENCE_MAX_BYTES = 1 << 30
#: How long hashing one release's evidence may take before it is refused.
DEFAULT_HASH_TIMEOUT_SECONDS = 120.0
#: The release gives ``verify_evidence`` 5 minutes (``workflows/timeouts.EVIDENCE_TIMEOUT``): the
#: hashing limit stays well inside it, so a slow file is a refusal, never a timed-out activity.
MAX_HASH_TIMEOUT_SECONDS = 240.0
#: URI schemes a release may name. ``file`` is read under the roots; the others are recorded as
#: ``unverified`` (the worker never fetches a URL a client named). Any other scheme is refused.
DEFAULT_EVIDENCE_SCHEMES = ("file", "https", "http", "s3", "gs")


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


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"evidence roots must be absolute paths, not {str(path)!r}")
    return path


#: A URI scheme as RFC 3986 spells it, lower case.
Scheme = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9+.-]{0,31}$")]


class EvidenceSettings(Model):
    """What evidence and artifact URIs the worker reads, and how much of them.

    The worker's data directory is always a root besides ``roots``; ``gatekeeper dev`` and
    ``gatekeeper demo`` add the directory they read examples from (see docs/running.md). No
    client ever names a root.
    """

    roots: list[Annotated[Path, AfterValidator(_absolute)]] = Field(
        default_factory=list, max_length=100
    )
    schemes: list[Scheme] = Field(
        default_factory=lambda: list(DEFAULT_EVIDENCE_SCHEMES), max_length=50
    )
    max_bytes: int = Field(default=DEFAULT_EVIDENCE_MAX_BYTES, ge=1)
    hash_timeout_seconds: float = Field(
        default=DEFAULT_HASH_TIMEOUT_SECONDS, gt=0, le=MAX_HASH_TIMEOUT_SECONDS
    )

    def with_roots(self, *extra: Path) -> EvidenceSettings:
        """These settings with ``extra`` directories (made absolute) added to the roots."""
        roots = list(self.roots)
        roots += [p.absolute() for p in extra if p.absolute() not in roots]
        return self.model_copy(update={"roots": roots})


class WorkerConfig(Model):
    """The whole configuration file. Every section is optional."""

    channels: dict[Identifier, ChannelSettings] = Field(default_factory=dict)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)

    def with_evidence_roots(self, *extra: Path) -> WorkerConfig:
        """This configuration with ``extra`` evidence roots (what ``dev`` and ``demo`` add)."""
        return self.model_copy(update={"evidence": self.evidence.with_roots(*extra)})


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

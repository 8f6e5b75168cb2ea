"""The worker's own configuration: what no policy, spec or payload may choose.

A policy routes events to channel *names*; what a channel is (its type, and the type's fields:
a URL, an SMTP host, a sender, the variable holding its secret), which destinations
the worker may reach, and which evidence it may read are decided here, by whoever runs the
worker. Each channel type is one module of :mod:`gatekeeper.channels`, holding the model of its
sections. The file is TOML, named by ``GATEKEEPER_CONFIG`` (default: ``gatekeeper.toml`` in the
data directory, if it exists)::

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

    [identity]
    unsigned = "refuse"              # "allow" only for local experiments (logged loudly)
    trust_root = "ed25519:…"         # the installation's root key id (gatekeeper identity init)
    worker_key = "/srv/gatekeeper/worker-key.pem"   # signs audit heads

    [console]
    url = "https://gatekeeper.example.com"   # public base URL: links in notifications, passkeys
    oidc_issuer = "https://login.example.com/realms/lab"
    oidc_client_id = "gatekeeper-console"
    oidc_client_secret_env = "GATEKEEPER_OIDC_CLIENT_SECRET"
    session_secret_env = "GATEKEEPER_CONSOLE_SESSION_SECRET"
    dev_sign_in = false              # pick anyone from the roster; loopback only (gatekeeper dev)
    gateway_key = "/srv/gatekeeper/console-key.pem"   # the console's own Ed25519 key

    [access_service]                 # gatekeeper access serve (gatekeeper.access_service)
    host = "127.0.0.1"
    port = 8470
    tokens_file = "/srv/gatekeeper/gateway-tokens"   # one caller token per line (rotation)
    token_env = "GATEKEEPER_GATEWAY_TOKEN"           # or a variable holding one
    tls_cert = "/srv/gatekeeper/access.crt"          # optional TLS; with client_ca: mTLS
    tls_key = "/srv/gatekeeper/access.key"
    client_ca = "/srv/gatekeeper/gateway-ca.pem"
    staleness = 2.0                  # seconds: deny (fail closed) when the view is older
    poll = 0.1                       # seconds between change-feed polls
    allow_sample = 0.01              # share of allows written to the edge log (denies: all)
    log_file = "/var/log/gatekeeper/access-decisions.jsonl"   # default: standard error

Nothing here is ever copied into a workflow's history, a log line or an error message except a
channel's *name*.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gatekeeper.channels import CHANNEL_TYPES, ConfiguredChannel, type_problem
from gatekeeper.egress import EgressRules, parse_allowed
from gatekeeper.errors import ConfigError
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.policy import BUILTIN_CHANNELS

CONFIG_FILE_NAME = "gatekeeper.toml"
#: Evidence files larger than this are refused unless the configuration says otherwise (1 GiB).
DEFAULT_EVIDENCE_MAX_BYTES = 1 << 30
#: How long hashing one release's evidence may take before it is refused.
DEFAULT_HASH_TIMEOUT_SECONDS = 120.0
#: Channel names every worker has without configuring them.
BUILTIN_CHANNEL_NAMES = frozenset(BUILTIN_CHANNELS)

#: The release gives ``verify_evidence`` 5 minutes (``workflows/timeouts.EVIDENCE_TIMEOUT``): the
#: hashing limit stays well inside it, so a slow file is a refusal, never a timed-out activity.
MAX_HASH_TIMEOUT_SECONDS = 240.0
#: URI schemes a release may name. ``file`` is read under the roots; the others are recorded as
#: ``unverified`` (the worker never fetches a URL a client named). Any other scheme is refused.
DEFAULT_EVIDENCE_SCHEMES = ("file", "https", "http", "s3", "gs")


class EgressSettings(Model):
    """Where the worker may send requests besides public addresses.

    Each entry is an IP address, a CIDR range (every address in it), or a host name (trusted with
    whatever it resolves to). See :mod:`gatekeeper.egress`.
    """

    allow_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="host names or IP addresses (or CIDR ranges) otherwise refused: loopback, "
        "link-local, private and cloud metadata addresses",
    )

    @field_validator("allow_hosts")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                parse_allowed(entry)
            except ValueError as err:
                raise PydanticCustomError("allow_hosts", str(err)) from None
        return value

    @property
    def rules(self) -> EgressRules:
        return EgressRules.allowing(self.allow_hosts)


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"evidence roots must be absolute paths, not {str(path)!r}")
    return path


def _absolute_file(path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"must be an absolute path, not {str(path)!r}")
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


class UnsignedRequests(StrEnum):
    """What the worker does with a state-changing request that carries no signature."""

    #: Refused in the update's validator (the default; what every shipped setup uses).
    REFUSE = "refuse"
    #: Accepted, for local experiments only: the worker logs a warning at start and on each one.
    ALLOW = "allow"


class IdentitySettings(Model):
    """Who the worker believes: signatures, its own key, the trust root (issue 12).

    ``trust_root`` pins the installation's root key (its key id); the registry's certificates
    must chain to it. ``worker_key`` is the worker's own Ed25519 private key (PEM), which signs
    audit heads; default ``<data_dir>/worker-key.pem``.
    """

    unsigned: UnsignedRequests = UnsignedRequests.REFUSE
    trust_root: str | None = Field(default=None, pattern=r"^ed25519:[0-9a-f]{32}$")
    worker_key: Annotated[Path, AfterValidator(_absolute)] | None = None


#: An environment variable's name (its value stays in the environment).
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


def _http_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"must be an http(s) URL with a host, not {value[:80]!r}")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError(f"must not carry a query, a fragment or credentials: {value[:80]!r}")
    return value


#: An absolute http(s) URL without query, fragment or credentials, exactly as written (an OIDC
#: issuer is compared character for character with the ``iss`` of its tokens).
HttpUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_http_url)]
#: The same, kept without a trailing slash (a base URL that paths are appended to).
BaseUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    AfterValidator(lambda value: value.rstrip("/")),
]


class ConsoleConfig(Model):
    """The web console (``gatekeeper console``, :mod:`gatekeeper.console`) and the links to it.

    ``url`` is where people reach the console: notifications that ask someone to act link to
    its pages (none when unset), and passkeys are bound to its origin (rp id: its host). Sign-in
    is OpenID Connect against ``oidc_issuer`` (discovery), as client ``oidc_client_id`` whose
    secret is in the variable ``oidc_client_secret_env`` names; a signed-in subject must be
    linked to a person in the identity registry (``gatekeeper keys sso link``). ``dev_sign_in``
    lets anyone pick a roster person, and only works while the console listens on loopback.
    """

    url: BaseUrl | None = None
    oidc_issuer: HttpUrl | None = None
    oidc_client_id: str | None = Field(default=None, min_length=1, max_length=256)
    oidc_client_secret_env: EnvName | None = None
    session_secret_env: EnvName | None = None
    dev_sign_in: bool = False
    gateway_key: Annotated[Path, AfterValidator(_absolute_file)] | None = None

    @model_validator(mode="after")
    def _oidc_whole(self) -> ConsoleConfig:
        named = [self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret_env]
        if any(v is not None for v in named) and not all(v is not None for v in named):
            raise PydanticCustomError(
                "console",
                "console: oidc_issuer, oidc_client_id and oidc_client_secret_env go together",
            )
        return self


#: Where ``gatekeeper access serve`` listens unless told otherwise.
DEFAULT_ACCESS_SERVICE_HOST = "127.0.0.1"
DEFAULT_ACCESS_SERVICE_PORT = 8470


class AccessServiceConfig(Model):
    """The access-decision service (``gatekeeper access serve``, :mod:`gatekeeper.access_service`).

    Callers (gateways) authenticate with a token from ``tokens_file`` (one per line, several
    during a rotation) or the variable ``token_env`` names, or with a client certificate signed
    by ``client_ca`` (mTLS, which needs ``tls_cert`` and ``tls_key``). ``staleness`` bounds how
    old the service's view of the registry may be before it denies everything (fail closed);
    ``poll`` is how often it asks the registry's change feed for news.
    """

    host: str = Field(default=DEFAULT_ACCESS_SERVICE_HOST, min_length=1, max_length=255)
    port: int = Field(default=DEFAULT_ACCESS_SERVICE_PORT, ge=0, le=65535)
    tokens_file: Annotated[Path, AfterValidator(_absolute_file)] | None = None
    token_env: EnvName | None = None
    tls_cert: Annotated[Path, AfterValidator(_absolute_file)] | None = None
    tls_key: Annotated[Path, AfterValidator(_absolute_file)] | None = None
    client_ca: Annotated[Path, AfterValidator(_absolute_file)] | None = None
    staleness: float = Field(default=2.0, gt=0, le=3600)
    poll: float = Field(default=0.1, gt=0, le=600)
    allow_sample: float = Field(default=0.01, ge=0, le=1)
    log_file: Annotated[Path, AfterValidator(_absolute_file)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AccessServiceConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise PydanticCustomError(
                "access_service", "access_service: tls_cert and tls_key go together"
            )
        if self.client_ca is not None and self.tls_cert is None:
            raise PydanticCustomError(
                "access_service",
                "access_service: client_ca (mTLS) needs tls_cert and tls_key",
            )
        if self.poll >= self.staleness:
            raise PydanticCustomError(
                "access_service",
                "access_service: poll ({poll} s) must be shorter than staleness ({staleness} s)",
                {"poll": f"{self.poll:g}", "staleness": f"{self.staleness:g}"},
            )
        return self


class WorkerConfig(Model):
    """The whole configuration file. Every section is optional."""

    #: Channel names and what they are: each section's ``type`` picks its model (one module per
    #: type in :mod:`gatekeeper.channels`).
    channels: dict[Identifier, ConfiguredChannel] = Field(default_factory=dict)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    access_service: AccessServiceConfig = Field(default_factory=AccessServiceConfig)

    @model_validator(mode="before")
    @classmethod
    def _channel_types(cls, data: object) -> object:
        # Before the union picks a model: an unknown type is named as such, at its field.
        sections = data.get("channels") if isinstance(data, dict) else None
        if not isinstance(sections, dict):
            return data
        for name, section in sections.items():
            problem = type_problem(section)
            if problem is not None:
                raise PydanticCustomError(
                    "channel",
                    "channels.{name}.type: {problem}",
                    {"name": str(name)[:64], "problem": problem},
                )
        return data

    @model_validator(mode="after")
    def _channels(self) -> WorkerConfig:
        rules = self.egress.rules
        for name, channel in self.channels.items():
            if name in BUILTIN_CHANNEL_NAMES:
                raise PydanticCustomError(
                    "channel",
                    "channels.{name}: '{name}' is built in; choose another name",
                    {"name": name},
                )
            for field, host in channel.destinations():
                problem = rules.configured_host_problem(host)
                if problem is not None:
                    raise PydanticCustomError(
                        "egress",
                        "channels.{name}.{field}: the destination {problem}; destinations "
                        "outside the public internet must be listed in [egress] allow_hosts",
                        {"name": name, "field": field, "problem": problem},
                    )
        return self

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
        where = ".".join(str(part) for part in _location(first["loc"]))
        prefix = f"{where}: " if where else ""  # a rule over several sections names its field
        raise ConfigError(f"{path}: {prefix}{first['msg']}") from None


def _location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A field's location as the file spells it: ``channels.<name>.<field>``, without the
    union's tag pydantic adds after the name."""
    if len(loc) >= 3 and loc[0] == "channels" and loc[2] in CHANNEL_TYPES:
        return (*loc[:2], *loc[3:])
    return loc

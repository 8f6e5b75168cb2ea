"""Gatekeeper's settings: loaded once at the process edge and passed down.

The Temporal connection is *not* here: it comes from ``temporalio.envconfig`` (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*``, TOML profiles), so Gatekeeper
never invents names for what Temporal already names. Nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, cast, get_args

from gatekeeper.config import CONFIG_FILE_NAME, WorkerConfig, load_worker_config
from gatekeeper.errors import ConfigError

# The payload-compression setting lives here, not in gatekeeper.compression: reading settings
# must not import Temporal's protobufs (the access service never talks to Temporal).
#: ``GATEKEEPER_PAYLOAD_COMPRESSION`` values.
Algorithm = Literal["off", "zlib"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
COMPRESSION_VARIABLE = "GATEKEEPER_PAYLOAD_COMPRESSION"


def parse_algorithm(raw: str | None) -> Algorithm:
    """``GATEKEEPER_PAYLOAD_COMPRESSION``'s value: ``zlib``, or ``off`` (also empty, ``0``,
    ``none``, ``false``, ``no``).

    Raises:
        ConfigError: any other value.
    """
    value = (raw or "").strip().lower()
    if value in ("", "0", "off", "none", "false", "no"):
        return "off"
    if value in ALGORITHMS:
        return cast(Algorithm, value)
    raise ConfigError(f"{COMPRESSION_VARIABLE} must be zlib or off, not {value[:32]!r}")


DEFAULT_TASK_QUEUE = "gatekeeper"
DEFAULT_DATA_DIR = Path(".gatekeeper")
DEFAULT_MAX_CACHED_WORKFLOWS = 250
#: Seconds between a worker's grant reconciliations (``gatekeeper.reconcile``).
DEFAULT_RECONCILE_EVERY = 300
#: ``GATEKEEPER_EVICT_AFTER_QUERY`` (see :class:`Settings`, docs/running.md).
EvictAfterQuery = Literal["off", "stale", "all"]
_LOG_FORMATS = ("auto", "console", "json")


@dataclass(frozen=True)
class Settings:
    """Everything a Gatekeeper process needs besides the Temporal connection.

    Attributes:
        task_queue: the task queue releases run on; every worker of a deployment shares it.
        data_dir: where the worker keeps its own files (the SQLite registry by default, the outbox file, its key).
        policy_path: policy file for new releases; ``None`` means the packaged default policy.
        registry_url: SQLAlchemy URL of the access registry (SQLite under ``data_dir`` by default).
        log_format: ``auto`` (console on a terminal, JSON otherwise), ``console`` or ``json``.
        log_level: standard level name.
        temporal_profile: envconfig profile to load (``TEMPORAL_PROFILE`` is honoured too).
        keys_dir: where ``gatekeeper keys generate`` keeps private signing keys.
        max_cached_workflows: releases a worker keeps in memory (``GATEKEEPER_MAX_CACHED_WORKFLOWS``);
            a release evicted from the cache replays its (short) history when it next wakes.
        env: the environment the settings were read from, kept for adapters that need a secret
            named by the policy (webhook HMAC keys); never read at import time.
        codec_keys: payload encryption keys, ``id:<base64>`` entries separated by commas
            (``GATEKEEPER_CODEC_KEYS``); unset with no key file means payloads are plain JSON.
        codec_key_file: a file of ``id:<base64>`` lines, listed before ``codec_keys``'s
            (``GATEKEEPER_CODEC_KEY_FILE``).
        codec_active_key: the key id new payloads are encrypted with (``GATEKEEPER_CODEC_ACTIVE``);
            the last key listed when unset.
        codec_allow_plaintext: with codec keys set, still accept payloads that are not
            encrypted (``GATEKEEPER_CODEC_ALLOW_PLAINTEXT=1``); a migration switch only, off by
            default: with it off a plaintext payload is refused (see :mod:`gatekeeper.codec`).
        codec_server_token: bearer token ``gatekeeper codec-server`` requires of its callers
            (``GATEKEEPER_CODEC_SERVER_TOKEN``); the server refuses to start without one unless
            it listens on loopback only.
        payload_compression: ``zlib`` compresses payloads over 1 KiB before they leave the
            process (``GATEKEEPER_PAYLOAD_COMPRESSION``); ``off`` (the default) sends them as
            they are. Compressed payloads are read either way (see :mod:`gatekeeper.compression`).
        codec_server_cors_origins: browser origins (the Temporal UI's) the codec server answers
            CORS for (``GATEKEEPER_CODEC_SERVER_CORS_ORIGIN``, comma-separated); empty means the
            dev server's UI on localhost.
        reconcile_every: seconds between a worker's grant reconciliations
            (``GATEKEEPER_RECONCILE_EVERY``, see :mod:`gatekeeper.reconcile`); it also runs once
            when the worker starts.
        evict_after_query: when a worker drops a release from its cache after a status query it
            answers (``GATEKEEPER_EVICT_AFTER_QUERY``): ``stale`` (the default: only
            when the query brought the cached copy a longer history and nothing else to apply:
            another worker's workflow task is in flight), ``off``, ``all`` (after every such query; a
            full replay for the release's next task or query on that worker). Against the SDK's
            "cached copy that missed an update" error (docs/running.md).
        config: the worker's own configuration (channels, egress, evidence roots), read from
            ``GATEKEEPER_CONFIG`` or ``<data_dir>/gatekeeper.toml`` (see :mod:`gatekeeper.config`).
        temporal_token_file: a file holding the bearer token (a JWT, or a Temporal Cloud API
            key) sent to Temporal as ``authorization: Bearer …`` (``GATEKEEPER_TEMPORAL_TOKEN_FILE``);
            read when connecting and re-read while connected, so a renewed token is picked up
            without a restart (see :mod:`gatekeeper.client`). Only the path is kept here.
    """

    task_queue: str = DEFAULT_TASK_QUEUE
    data_dir: Path = DEFAULT_DATA_DIR
    policy_path: Path | None = None
    registry_url: str | None = None
    log_format: str = "auto"
    log_level: str = "INFO"
    temporal_profile: str | None = None
    keys_dir: Path = field(default_factory=lambda: Path.home() / ".config" / "gatekeeper" / "keys")
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    codec_keys: str | None = field(default=None, repr=False)
    codec_key_file: Path | None = None
    codec_active_key: str | None = None
    codec_allow_plaintext: bool = False
    codec_server_token: str | None = field(default=None, repr=False)
    codec_server_cors_origins: tuple[str, ...] = ()
    payload_compression: Algorithm = "off"
    config: WorkerConfig = field(default_factory=WorkerConfig, repr=False)
    reconcile_every: int = DEFAULT_RECONCILE_EVERY
    evict_after_query: EvictAfterQuery = "stale"
    temporal_token_file: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``GATEKEEPER_*`` variables; unset ones keep their defaults."""
        env = dict(os.environ if environ is None else environ)
        log_format = env.get("GATEKEEPER_LOG_FORMAT", "auto").lower()
        if log_format not in _LOG_FORMATS:
            raise ConfigError(
                f"GATEKEEPER_LOG_FORMAT must be one of {', '.join(_LOG_FORMATS)}, not {log_format!r}"
            )
        policy = env.get("GATEKEEPER_POLICY")
        key_file = env.get("GATEKEEPER_CODEC_KEY_FILE")
        data_dir = Path(env.get("GATEKEEPER_DATA_DIR", str(DEFAULT_DATA_DIR)))
        config_path = env.get("GATEKEEPER_CONFIG")
        token_file = env.get("GATEKEEPER_TEMPORAL_TOKEN_FILE")
        config = (
            load_worker_config(Path(config_path), required=True)
            if config_path
            else load_worker_config(data_dir / CONFIG_FILE_NAME)
        )
        return cls(
            task_queue=env.get("GATEKEEPER_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            data_dir=data_dir,
            policy_path=Path(policy) if policy else None,
            registry_url=env.get("GATEKEEPER_REGISTRY_URL") or None,
            log_format=log_format,
            log_level=env.get("GATEKEEPER_LOG_LEVEL", "INFO").upper(),
            temporal_profile=env.get("TEMPORAL_PROFILE") or None,
            keys_dir=Path(env["GATEKEEPER_KEYS_DIR"])
            if env.get("GATEKEEPER_KEYS_DIR")
            else Path.home() / ".config" / "gatekeeper" / "keys",
            env=env,
            max_cached_workflows=_positive_int(
                env, "GATEKEEPER_MAX_CACHED_WORKFLOWS", DEFAULT_MAX_CACHED_WORKFLOWS
            ),
            codec_keys=env.get("GATEKEEPER_CODEC_KEYS") or None,
            codec_key_file=Path(key_file) if key_file else None,
            codec_active_key=env.get("GATEKEEPER_CODEC_ACTIVE") or None,
            codec_allow_plaintext=_flag(env, "GATEKEEPER_CODEC_ALLOW_PLAINTEXT"),
            codec_server_token=env.get("GATEKEEPER_CODEC_SERVER_TOKEN") or None,
            codec_server_cors_origins=tuple(
                origin.strip()
                for origin in env.get("GATEKEEPER_CODEC_SERVER_CORS_ORIGIN", "").split(",")
                if origin.strip()
            ),
            payload_compression=parse_algorithm(env.get("GATEKEEPER_PAYLOAD_COMPRESSION")),
            config=config,
            reconcile_every=_positive_int(
                env, "GATEKEEPER_RECONCILE_EVERY", DEFAULT_RECONCILE_EVERY
            ),
            evict_after_query=_evict_after_query(env),
            temporal_token_file=Path(token_file) if token_file else None,
        )

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]

    @property
    def effective_registry_url(self) -> str:
        return self.registry_url or f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _evict_after_query(env: Mapping[str, str]) -> EvictAfterQuery:
    raw = env.get("GATEKEEPER_EVICT_AFTER_QUERY", "").strip().lower() or "stale"
    for mode in get_args(EvictAfterQuery):
        if raw == mode:
            return cast(EvictAfterQuery, mode)
    raise ConfigError(f"GATEKEEPER_EVICT_AFTER_QUERY must be off, stale or all, not {raw!r}")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), not {raw!r}")


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, not {value}")
    return value

"""``connect()``: a Temporal client with the pydantic data converter, configured by envconfig.

A bearer token for clusters that authorize callers (the compose stack's JWT authorizer, see
docs/deployment.md) comes from the file named by ``GATEKEEPER_TEMPORAL_TOKEN_FILE``: it is sent
as Temporal's API key (``authorization: Bearer <token>``), read at connect and re-read every
minute while connected, so a renewed token replaces an expiring one without a restart. The token
is never logged and never part of an error message (errors name the file only).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig

from gatekeeper import redact
from gatekeeper.codec import EncryptedPayloadConverter, EncryptionCodec, payload_codec
from gatekeeper.errors import ConfigError
from gatekeeper.failures import CONVERTER, EncodedRefusalFailureConverter
from gatekeeper.settings import Settings
from gatekeeper.temporal_errors import TOKEN_VARIABLE, unreachable

log = structlog.get_logger(__name__)

DEFAULT_ADDRESS = "localhost:7233"
#: Seconds between re-reads of the token file while a client is connected.
TOKEN_REFRESH_EVERY = 60.0
#: A token file larger than this is refused: it is not a token (JWTs are a few hundred bytes).
MAX_TOKEN_BYTES = 16 * 1024

#: Running token refreshers, referenced so they are not garbage-collected mid-sleep.
_refreshers: set[asyncio.Task[None]] = set()


def connect_config(settings: Settings) -> dict[str, Any]:
    """Connection arguments from ``TEMPORAL_*`` variables and TOML profiles (envconfig)."""
    try:
        config: dict[str, Any] = dict(
            ClientConfig.load_client_connect_config(
                profile=settings.temporal_profile,
                override_env_vars=dict(settings.env) if settings.env else None,
            )
        )
    except Exception as err:  # envconfig raises plain errors for bad TOML or unknown profiles
        raise ConfigError(f"Temporal connection settings are invalid: {err}") from err
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    if settings.temporal_token_file is not None:
        if config.get("api_key"):
            raise ConfigError(
                f"both {TOKEN_VARIABLE} and an API key (TEMPORAL_API_KEY or the profile's "
                "api_key) are set; keep one"
            )
        config["api_key"] = read_token(settings.temporal_token_file)
        # As with TEMPORAL_API_KEY: a bearer token turns TLS on unless TEMPORAL_TLS says otherwise.
        config.setdefault("tls", True)
    return config


def read_token(path: Path) -> str:
    """The bearer token in ``path``: one line, surrounding whitespace removed, no ``Bearer``.

    The token is remembered by :mod:`gatekeeper.redact` so that it is masked should a library
    ever quote it. Errors name the file and never its content.

    Raises:
        ConfigError: the file cannot be read, is empty, too large, or holds more than a token.
    """
    where = f"{TOKEN_VARIABLE} {path}"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{where} cannot be read: {err.strerror or type(err).__name__}") from None
    if len(raw) > MAX_TOKEN_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_TOKEN_BYTES // 1024} KiB: not a token")
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{where} holds non-ASCII bytes: not a token") from None
    if not token:
        raise ConfigError(f"{where} is empty")
    if token.lower().startswith("bearer"):
        raise ConfigError(f"{where} must hold the token alone, without 'Bearer'")
    if not all(ch.isprintable() and not ch.isspace() for ch in token):
        raise ConfigError(f"{where} must hold one token on one line")
    redact.remember(token)
    return token


def data_converter(settings: Settings) -> DataConverter:
    """The converter every Gatekeeper client and worker uses: pydantic models as JSON, and
    refusals without stack traces (:mod:`gatekeeper.failures`).

    Compressed payloads are always read, and large payloads are compressed when
    ``GATEKEEPER_PAYLOAD_COMPRESSION=zlib`` (see :mod:`gatekeeper.compression`); one that does
    not inflate within the bound is refused with a ``compressed_payload_refused`` error.
    With codec keys configured (see :mod:`gatekeeper.codec`) every payload is encrypted, and
    failure messages and stack traces move into an encoded attribute so they are encrypted too;
    a payload that arrives unencrypted is refused with a ``plaintext_refused`` error.

    Raises:
        ConfigError: the codec keys are malformed.
    """
    codec = payload_codec(settings)
    encrypted = any(isinstance(c, EncryptionCodec) for c in codec.codecs)
    return dataclasses.replace(
        CONVERTER,
        payload_converter_class=EncryptedPayloadConverter,
        payload_codec=codec,
        failure_converter_class=(
            EncodedRefusalFailureConverter if encrypted else CONVERTER.failure_converter_class
        ),
    )


async def connect(settings: Settings) -> Client:
    """Connect to the Temporal server named by the environment, or explain why not in one line."""
    config = connect_config(settings)
    target = config["target_host"]
    try:
        client = await Client.connect(**config, data_converter=data_converter(settings))
    except RuntimeError as err:
        raise unreachable(err, target=target, namespace=config["namespace"]) from err
    if settings.temporal_token_file is not None:
        keep_token_fresh(client, settings.temporal_token_file)
    return client


def keep_token_fresh(
    client: Client, path: Path, every: float = TOKEN_REFRESH_EVERY
) -> asyncio.Task[None]:
    """Re-read the token file every ``every`` seconds and give the client a changed token.

    Runs until the event loop ends (``asyncio.run`` cancels it). A file that cannot be read
    keeps the previous token and logs why (the file's name, never a token).
    """
    task = asyncio.get_running_loop().create_task(
        _refresh_token(client, path, every), name="gatekeeper-temporal-token"
    )
    _refreshers.add(task)
    task.add_done_callback(_refreshers.discard)
    return task


async def _refresh_token(client: Client, path: Path, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            token = read_token(path)
        except ConfigError as err:
            log.warning("temporal_token_unreadable", error=str(err))
            continue
        if token != client.api_key:
            client.api_key = token
            log.info("temporal_token_renewed", file=str(path))

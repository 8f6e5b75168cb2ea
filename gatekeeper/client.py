"""``connect()``: a Temporal client with the pydantic data converter, configured by envconfig."""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig

from gatekeeper.codec import EncryptedPayloadConverter, codec_from_settings
from gatekeeper.errors import ConfigError, ConnectionFailed
from gatekeeper.failures import CONVERTER, EncodedRefusalFailureConverter
from gatekeeper.settings import Settings

DEFAULT_ADDRESS = "localhost:7233"


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
    return config


def data_converter(settings: Settings) -> DataConverter:
    """The converter every Gatekeeper client and worker uses: pydantic models as JSON, and
    refusals without stack traces (:mod:`gatekeeper.failures`).

    With codec keys configured (see :mod:`gatekeeper.codec`) every payload is encrypted, and
    failure messages and stack traces move into an encoded attribute so they are encrypted too;
    a payload that arrives unencrypted is refused with a ``plaintext_refused`` error.

    Raises:
        ConfigError: the codec keys are malformed.
    """
    codec = codec_from_settings(settings)
    if codec is None:
        return CONVERTER
    return dataclasses.replace(
        CONVERTER,
        payload_converter_class=EncryptedPayloadConverter,
        payload_codec=codec,
        failure_converter_class=EncodedRefusalFailureConverter,
    )


async def connect(settings: Settings) -> Client:
    """Connect to the Temporal server named by the environment, or explain why not in one line."""
    config = connect_config(settings)
    target = config["target_host"]
    try:
        return await Client.connect(**config, data_converter=data_converter(settings))
    except RuntimeError as err:
        raise ConnectionFailed(
            f"cannot reach Temporal at {target} (namespace {config['namespace']}): "
            f"{_first_line(err)}; start one with `gatekeeper dev` or set TEMPORAL_ADDRESS"
        ) from err


def _first_line(err: BaseException) -> str:
    """The cause in a few words: Core's transport errors are long Rust debug strings."""
    text = str(err)
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("dns error", "unknown host"),
        ("timed out", "timed out"),
        ("certificate", "TLS certificate problem"),
        ("Unauthenticated", "unauthenticated (check TEMPORAL_API_KEY / TLS settings)"),
    ):
        if needle.lower() in text.lower():
            return short
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__

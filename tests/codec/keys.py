"""Fixed test keys, so a failure message shows the same ids every run."""

from __future__ import annotations

import base64

from gatekeeper.codec import EncryptionCodec, Keyring

K1 = bytes(range(32))
K2 = bytes(range(32, 64))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def codec(*, active: str = "k2", **keys: bytes) -> EncryptionCodec:
    return EncryptionCodec(Keyring(keys=keys or {"k1": K1, "k2": K2}, active=active))


def env_keys() -> str:
    """``GATEKEEPER_CODEC_KEYS`` for K1 and K2 (K2 is last, so active by default)."""
    return f"k1:{b64(K1)},k2:{b64(K2)}"

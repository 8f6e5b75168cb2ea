"""Signed decisions: an Ed25519 signature makes an approval an attestation.

The signed bytes are the canonical JSON of: release id, stage, decision, decider, role, the time
of signing, a one-time nonce, the artifact digest being approved, and a ``subject`` (the extra
fact a government response asserts, e.g. the date a delay runs to). So a signature says "this
person approved this digest for this stage at this time" and cannot be moved to another release,
stage, artifact or decision, nor replayed (the workflow remembers nonces).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gatekeeper.canonical import canonical_json


def timestamp(value: datetime) -> str:
    """The one spelling of a time inside a signed payload (UTC, microseconds, ``Z``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decision_payload(
    *,
    release_id: str,
    stage: str,
    decision: str,
    decider: str,
    role: str,
    signed_at: datetime,
    nonce: str,
    artifact_sha256: str,
    subject: str = "",
) -> bytes:
    """The exact bytes a decision's signature covers."""
    return canonical_json(
        {
            "artifact_sha256": artifact_sha256,
            "decider": decider,
            "decision": decision,
            "nonce": nonce,
            "release_id": release_id,
            "role": role,
            "signed_at": timestamp(signed_at),
            "stage": stage,
            "subject": subject,
        }
    )


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def sign(private_key: Ed25519PrivateKey, payload: bytes) -> str:
    return base64.b64encode(private_key.sign(payload)).decode("ascii")


def load_public_key(public_key_b64: str) -> Ed25519PublicKey:
    """Parse a roster key (base64 of the raw 32 bytes). Raises ValueError when malformed."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("public key is not valid base64") from err
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(public_key_b64: str, payload: bytes, signature_b64: str) -> bool:
    """True only for a well-formed signature by this key over exactly these bytes."""
    try:
        key = load_public_key(public_key_b64)
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, payload)
    except (ValueError, binascii.Error, InvalidSignature):
        return False
    return True


def generate_keypair() -> tuple[bytes, str]:
    """A new key pair: (PEM of the private key, base64 raw public key for the roster)."""
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return pem, base64.b64encode(public_raw).decode("ascii")


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    """The roster form (base64 of the raw 32 bytes) of a private key's public half."""
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")

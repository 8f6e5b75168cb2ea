"""Passkey assertions (WebAuthn, ES256), checked against a registered key: one function for the
worker's update validators and for ``audit verify``.

A browser asked to sign with a passkey (``navigator.credentials.get``) returns three buffers:

- ``authenticatorData``: ``rpIdHash`` (32 bytes: sha256 of the relying party id), ``flags``
  (1 byte: bit 0 *user present*, bit 2 *user verified*), ``signCount`` (4 bytes, big-endian),
  then optional extensions;
- ``clientDataJSON``: JSON the browser wrote: ``type`` (``"webauthn.get"``), ``challenge``
  (base64url of the challenge the page passed), ``origin`` (the page's origin), ...;
- ``signature``: DER ECDSA P-256 / SHA-256 over ``authenticatorData || sha256(clientDataJSON)``.

:func:`assertion_problem` checks all of it against a :class:`~gatekeeper.identity.keys.KeyRecord`
of kind ``webauthn`` (its public key, relying party id and origin) and the challenge the verifier
computed itself (:func:`gatekeeper.statements.challenge`: the statement the request is). The sign
counter is not used: passkeys synced between devices report 0, and replay is refused by the
statement's one-time nonce instead.

Pure functions over bytes; ``cryptography`` does the ECDSA.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gatekeeper.identity.keys import KeyKind, KeyRecord
from gatekeeper.statements import MAX_AUTHENTICATOR_DATA, MAX_CLIENT_DATA_JSON, b64url_decode

#: Flags of ``authenticatorData``.
FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
#: rpIdHash (32) + flags (1) + signCount (4).
AUTH_DATA_MIN = 37
#: The refusal of an assertion over another statement than the one the verifier holds.
CHALLENGE_DIFFERS = (
    "the passkey assertion is for another statement (challenge differs); look again and sign"
)


@dataclass(frozen=True)
class AuthenticatorData:
    """The fixed part of ``authenticatorData``."""

    rp_id_hash: bytes
    flags: int
    sign_count: int

    @property
    def user_present(self) -> bool:
        return bool(self.flags & FLAG_USER_PRESENT)

    @property
    def user_verified(self) -> bool:
        return bool(self.flags & FLAG_USER_VERIFIED)


def parse_authenticator_data(raw: bytes) -> AuthenticatorData:
    """Raises ValueError when ``raw`` is too short or too long."""
    if len(raw) < AUTH_DATA_MIN:
        raise ValueError(
            f"authenticator data is {len(raw)} bytes, at least {AUTH_DATA_MIN} expected"
        )
    if len(raw) > MAX_AUTHENTICATOR_DATA:
        raise ValueError(
            f"authenticator data is {len(raw)} bytes, at most {MAX_AUTHENTICATOR_DATA}"
        )
    return AuthenticatorData(
        rp_id_hash=raw[:32], flags=raw[32], sign_count=int.from_bytes(raw[33:37], "big")
    )


def load_public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """A passkey's public key from base64 of its 65-byte uncompressed P-256 point.

    Raises:
        ValueError: not base64, not 65 bytes, or not a point on P-256.
    """
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("the passkey's public key is not valid base64") from err
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("a passkey's public key is a 65-byte uncompressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as err:
        raise ValueError("the passkey's public key is not a point on P-256") from err


def public_key_b64(key: ec.EllipticCurvePublicKey) -> str:
    """The registry's form of a P-256 public key: base64 of its uncompressed point."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.b64encode(raw).decode("ascii")


def assertion_problem(
    record: KeyRecord,
    *,
    challenge: bytes,
    authenticator_data: str,
    client_data_json: str,
    signature_b64: str,
) -> str | None:
    """``None`` when the assertion is ``record``'s passkey signing ``challenge`` for its
    relying party and origin with the user verified; else why not, in one line.

    ``authenticator_data`` and ``client_data_json`` are base64url as the browser returned them,
    ``signature_b64`` the DER signature in standard base64 (``RequestSignature.value``).
    """
    if record.kind is not KeyKind.WEBAUTHN or record.rp_id is None or record.origin is None:
        return f"key {record.key_id} of {record.principal} is not a passkey"
    try:
        auth_raw = b64url_decode(authenticator_data)
        client_raw = b64url_decode(client_data_json)
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return "the passkey assertion is not base64 (authenticator data, client data, signature)"
    if len(client_raw) > MAX_CLIENT_DATA_JSON:
        return (
            f"the passkey's client data is {len(client_raw)} bytes, at most {MAX_CLIENT_DATA_JSON}"
        )
    try:
        auth = parse_authenticator_data(auth_raw)
    except ValueError as err:
        return f"the passkey assertion is malformed: {err}"
    try:
        client = json.loads(client_raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "the passkey's client data is not JSON"
    if not isinstance(client, dict):
        return "the passkey's client data is not a JSON object"
    if client.get("type") != "webauthn.get":
        return f"the passkey's client data is of type {str(client.get('type'))[:40]!r}, not webauthn.get"
    if client.get("challenge") != base64.urlsafe_b64encode(challenge).rstrip(b"=").decode():
        return CHALLENGE_DIFFERS
    if client.get("origin") != record.origin:
        return (
            f"the passkey assertion was made on {str(client.get('origin'))[:80]}, the passkey is "
            f"registered for {record.origin}"
        )
    if client.get("crossOrigin") is True:
        return "the passkey assertion was made in a cross-origin frame"
    if auth.rp_id_hash != hashlib.sha256(record.rp_id.encode("ascii")).digest():
        return f"the passkey assertion is for another relying party than {record.rp_id}"
    if not auth.user_present:
        return "the passkey assertion does not show the user present (UP flag)"
    if not auth.user_verified:
        return (
            "the passkey assertion does not show the user verified (UV flag: PIN or biometric); "
            "sign again with user verification"
        )
    try:
        key = load_public_key(record.public_key)
        key.verify(
            signature,
            auth_raw + hashlib.sha256(client_raw).digest(),
            ec.ECDSA(hashes.SHA256()),
        )
    except (ValueError, InvalidSignature):
        return (
            f"the passkey signature does not verify with key {record.key_id} of {record.principal}"
        )
    return None

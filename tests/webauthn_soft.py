"""A software WebAuthn authenticator for tests: a P-256 passkey that answers exactly as a browser
does (``navigator.credentials.create`` / ``get``), so tests sign decisions with a passkey
without a browser, and can break each part of an assertion on purpose.

- :meth:`SoftAuthenticator.registration` is what the browser returns when a passkey is created
  (``clientDataJSON`` of type ``webauthn.create`` and a ``none``-format attestation object whose
  authenticator data carries the credential id and the COSE public key): the console's
  registration page verifies it;
- :meth:`SoftAuthenticator.assertion` is what the browser returns when a passkey signs a
  challenge: ``authenticatorData`` (rpIdHash, flags, signCount), ``clientDataJSON`` (type,
  challenge, origin, crossOrigin, compact JSON in Chromium's key order) and the DER ECDSA
  signature over ``authenticatorData || sha256(clientDataJSON)``, each base64url;
- :meth:`SoftAuthenticator.sign` signs a Gatekeeper request with :func:`statements.challenge` as
  the challenge and returns it as the console sends it (:func:`statements.webauthn_signed`).

Every part can be overridden (origin, rp id, flags, type, challenge) to test the refusals.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gatekeeper.identity.keys import webauthn_key_id
from gatekeeper.statements import Binding, b64url, challenge, new_nonce, webauthn_signed

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gatekeeper.identity.keys import KeyRecord, PendingPasskey
    from gatekeeper.identity.registry import IdentityRegistry

#: Where the tests' console is (the passkey's origin) and its relying party id.
ORIGIN = "http://localhost:8400"
RP_ID = "localhost"

#: The order of P-256's group (a private scalar is in 1..order-1).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

UP = 0x01
UV = 0x04
AT = 0x40


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for size, code in ((1, 24), (2, 25), (4, 26), (8, 27)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | code]) + value.to_bytes(size, "big")
    raise ValueError("too large")


def cbor(value: Any) -> bytes:
    """Minimal canonical CBOR (ints, bytes, text, lists, maps): enough for WebAuthn objects."""
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)
    if isinstance(value, bytes):
        return _cbor_head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(value, list):
        return _cbor_head(4, len(value)) + b"".join(cbor(v) for v in value)
    if isinstance(value, dict):
        return _cbor_head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


def client_data(kind: str, challenge_bytes: bytes, origin: str, **extra: Any) -> bytes:
    """clientDataJSON as Chromium writes it (compact, this key order)."""
    data = {
        "type": kind,
        "challenge": b64url(challenge_bytes),
        "origin": origin,
        "crossOrigin": False,
        **extra,
    }
    return json.dumps(data, separators=(",", ":")).encode()


class SoftAuthenticator:
    """One passkey (a P-256 key and a credential id) for one relying party."""

    def __init__(
        self,
        *,
        rp_id: str = RP_ID,
        origin: str = ORIGIN,
        seed: str | None = None,
    ) -> None:
        if seed is not None:
            scalar = int.from_bytes(hashlib.sha256(f"soft-passkey:{seed}".encode()).digest())
            self.private_key = ec.derive_private_key(scalar % (P256_ORDER - 1) + 1, ec.SECP256R1())
            self.credential_id = b64url(hashlib.sha256(f"cred:{seed}".encode()).digest()[:16])
        else:
            self.private_key = ec.generate_private_key(ec.SECP256R1())
            self.credential_id = b64url(secrets.token_bytes(16))
        self.rp_id = rp_id
        self.origin = origin
        self.sign_count = 0

    # -- the registered form -------------------------------------------------------------

    @property
    def point(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key(self) -> str:
        """base64 of the uncompressed point: the registry's form."""
        return base64.b64encode(self.point).decode("ascii")

    @property
    def key_id(self) -> str:
        return webauthn_key_id(self.public_key)

    def enroll(self, registry: IdentityRegistry, person: str, label: str = "") -> PendingPasskey:
        """Ask ``registry`` to register this passkey for ``person`` (as the console does)."""
        return registry.enroll_passkey(
            person,
            credential_id=self.credential_id,
            public_key=self.public_key,
            rp_id=self.rp_id,
            origin=self.origin,
            label=label,
        )

    def register(
        self, registry: IdentityRegistry, person: str, admin_key: Ed25519PrivateKey
    ) -> KeyRecord:
        """Enroll and have ``admin_key`` approve: the passkey counts from now."""
        return registry.approve_passkey(self.enroll(registry, person).enrollment_id, admin_key)

    # -- what the browser returns --------------------------------------------------------

    def _auth_data(self, rp_id: str, flags: int, extra: bytes = b"") -> bytes:
        self.sign_count += 1
        return (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + self.sign_count.to_bytes(4, "big")
            + extra
        )

    def registration(
        self, challenge_bytes: bytes, *, origin: str | None = None, user_verified: bool = True
    ) -> dict[str, str]:
        """``navigator.credentials.create``'s response (``none`` attestation), base64url."""
        numbers = self.private_key.public_key().public_numbers()
        cose = {
            1: 2,  # kty: EC2
            3: -7,  # alg: ES256
            -1: 1,  # crv: P-256
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        credential = base64.urlsafe_b64decode(
            self.credential_id + "=" * (-len(self.credential_id) % 4)
        )
        attested = (
            bytes(16)  # AAGUID
            + len(credential).to_bytes(2, "big")
            + credential
            + cbor(cose)
        )
        flags = UP | AT | (UV if user_verified else 0)
        self.sign_count = -1  # a new credential starts at 0
        auth = self._auth_data(self.rp_id, flags, attested)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth})
        client = client_data("webauthn.create", challenge_bytes, origin or self.origin)
        return {
            "id": self.credential_id,
            "rawId": self.credential_id,
            "type": "public-key",
            "client_data_json": b64url(client),
            "attestation_object": b64url(attestation),
        }

    def assertion(
        self,
        challenge_bytes: bytes,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        flags: int = UP | UV,
        kind: str = "webauthn.get",
        **client_extra: Any,
    ) -> dict[str, str]:
        """``navigator.credentials.get``'s response: authenticator data, client data JSON and
        the DER signature, each base64url."""
        auth = self._auth_data(rp_id or self.rp_id, flags)
        client = client_data(kind, challenge_bytes, origin or self.origin, **client_extra)
        signature = self.private_key.sign(
            auth + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "credential_id": self.credential_id,
            "authenticator_data": b64url(auth),
            "client_data_json": b64url(client),
            "signature": b64url(signature),
        }

    def sign(
        self,
        request: dict[str, Any],
        *,
        action: str,
        actor: str,
        binding: Binding,
        signed_at: datetime | None = None,
        nonce: str | None = None,
        challenge_for: dict[str, Any] | None = None,
        **assertion: Any,
    ) -> dict[str, Any]:
        """``request`` signed with this passkey over its statement, as the console sends it.

        ``challenge_for`` overrides fields of the statement the challenge is computed from (a
        passkey that signed another statement); ``assertion`` goes to :meth:`assertion`.
        """
        signed_at = signed_at or datetime.now(UTC)
        nonce = nonce or new_nonce()
        fields: dict[str, Any] = {
            "action": action,
            "actor": actor,
            "request": request,
            "binding": binding,
            "key_id": self.key_id,
            "signed_at": signed_at,
            "nonce": nonce,
        }
        fields.update(challenge_for or {})
        answer = self.assertion(challenge(**fields), **assertion)
        return webauthn_signed(
            request,
            action=action,
            actor=actor,
            binding=binding,
            key_id=self.key_id,
            signed_at=signed_at,
            nonce=nonce,
            authenticator_data=answer["authenticator_data"],
            client_data_json=answer["client_data_json"],
            signature=answer["signature"],
        )

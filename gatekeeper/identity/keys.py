"""A registered public key: whose it is, when it counts, who certified it.

A key's id is derived from its public bytes (``ed25519:`` and the first 32 hex digits of their
sha256), so a request naming a key id cannot point at another key. A key counts for a statement
signed at ``t`` when ``valid_from <= t < valid_until`` and it was not revoked at or before ``t``
(``KeyRecord.valid_at``). Each record carries a *certificate*: an identity admin's signature
over :func:`certificate_bytes`; the chain of certificates ends at the installation's trust root,
which an offline verifier pins.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import AwareDatetime, Field

from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.models.base import KEY_ID_PATTERN, Identifier, Model, ShortText

__all__ = [
    "KEY_ID_PATTERN",
    "KeyKind",
    "KeyRecord",
    "PrincipalKind",
    "certificate_bytes",
    "key_id_of",
]


class KeyKind(StrEnum):
    """How a key's owner holds it. Only ``ed25519`` (a CLI key) exists today; passkeys and
    gateways attesting single sign-on come with the console (issue 15)."""

    ED25519 = "ed25519"


class PrincipalKind(StrEnum):
    """Who a key belongs to."""

    PERSON = "person"
    #: A Gatekeeper worker: signs audit heads.
    WORKER = "worker"
    #: The installation's trust root and the identity admins it certifies.
    ADMIN = "admin"


def key_id_of(public_key_b64: str) -> str:
    """The id of an Ed25519 public key given as base64 of its raw 32 bytes."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("public key is not valid base64") from err
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return "ed25519:" + sha256_hex(raw)[:32]


class KeyRecord(Model):
    """One registered key, as the registry holds it and a dossier carries it."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    principal: Identifier = Field(description="the person (or worker, or admin) the key is for")
    principal_kind: PrincipalKind = PrincipalKind.PERSON
    kind: KeyKind = KeyKind.ED25519
    public_key: str = Field(description="base64 of the raw 32-byte Ed25519 public key")
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    revoked_reason: ShortText = ""
    #: The key id of the admin (or trust root) whose signature is ``certificate``; a trust root
    #: certifies itself.
    certified_by: str = Field(pattern=KEY_ID_PATTERN)
    certificate: str = Field(description="base64 Ed25519 signature over certificate_bytes()")

    def valid_at(self, when: datetime) -> bool:
        """Whether a statement signed at ``when`` may count with this key."""
        when = when.astimezone(UTC)
        if when < self.valid_from:
            return False
        if self.valid_until is not None and when >= self.valid_until:
            return False
        return self.revoked_at is None or when < self.revoked_at

    def why_not_valid_at(self, when: datetime) -> str | None:
        """``None`` when valid at ``when``, else a short reason for a one-line refusal."""
        when = when.astimezone(UTC)
        if when < self.valid_from:
            return f"key {self.key_id} of {self.principal} is not valid before {self.valid_from:%Y-%m-%d %H:%M} UTC"
        if self.revoked_at is not None and when >= self.revoked_at:
            return f"key {self.key_id} of {self.principal} was revoked at {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        if self.valid_until is not None and when >= self.valid_until:
            return f"key {self.key_id} of {self.principal} expired at {self.valid_until:%Y-%m-%d %H:%M} UTC"
        return None


def certificate_bytes(record: KeyRecord) -> bytes:
    """What an admin signs to certify a key: everything but revocation and the certificate.

    Revocation is certified separately (a signed revocation statement in the identity log), so a
    revoked record keeps its original certificate.
    """
    return canonical_json(
        {
            "v": 1,
            "type": "gatekeeper.key-certificate",
            "key_id": record.key_id,
            "principal": record.principal,
            "principal_kind": record.principal_kind.value,
            "kind": record.kind.value,
            "public_key": record.public_key,
            "valid_from": record.valid_from.astimezone(UTC).isoformat(),
            "valid_until": (
                record.valid_until.astimezone(UTC).isoformat() if record.valid_until else None
            ),
            "certified_by": record.certified_by,
        }
    )

"""A registered public key: whose it is, when it counts, who certified it.

A key's id is derived from its public bytes (``ed25519:`` or, for a passkey, ``webauthn:``, and
the first 32 hex digits of their sha256), so a request naming a key id cannot point at another
key. A key counts for a statement
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
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.models.base import (
    KEY_ID_PATTERN,
    Identifier,
    Model,
    ShortText,
    SsoIssuer,
    SsoSubject,
)

__all__ = [
    "KEY_ID_PATTERN",
    "KeyKind",
    "KeyRecord",
    "PendingPasskey",
    "PrincipalKind",
    "SsoLink",
    "certificate_bytes",
    "key_id_for",
    "key_id_of",
    "webauthn_key_id",
]

#: A WebAuthn credential id as the browser gives it: base64url without padding (at most 1023
#: bytes, WebAuthn level 3).
CREDENTIAL_ID_PATTERN = r"^[A-Za-z0-9_-]{16,1400}$"
#: A relying party id: the console's host name.
RP_ID_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
#: A web origin: scheme, host and optional port, nothing after.
ORIGIN_PATTERN = r"^https?://[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$"


class KeyKind(StrEnum):
    """How a key's owner holds it."""

    #: An Ed25519 key in a PEM file: a person's CLI key, a worker's, an admin's, a gateway's.
    ED25519 = "ed25519"
    #: A passkey (WebAuthn, ES256): the public key is base64 of the 65-byte uncompressed P-256
    #: point; the record also names the credential id, relying party id and origin.
    WEBAUTHN = "webauthn"


class PrincipalKind(StrEnum):
    """Who a key belongs to."""

    PERSON = "person"
    #: A Gatekeeper worker: signs audit heads.
    WORKER = "worker"
    #: The installation's trust root and the identity admins it certifies.
    ADMIN = "admin"
    #: A trusted gateway (the web console): attests a single sign-on identity when the policy
    #: allows gateway-attested decisions.
    GATEWAY = "gateway"


def key_id_of(public_key_b64: str) -> str:
    """The id of an Ed25519 public key given as base64 of its raw 32 bytes."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("public key is not valid base64") from err
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return "ed25519:" + sha256_hex(raw)[:32]


def webauthn_key_id(public_key_b64: str) -> str:
    """The id of a passkey's public key given as base64 of its 65-byte uncompressed P-256 point."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError("public key is not valid base64") from err
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError(
            f"a passkey's public key is a 65-byte uncompressed P-256 point, this one is "
            f"{len(raw)} bytes"
        )
    return "webauthn:" + sha256_hex(raw)[:32]


def rp_id_problem(rp_id: str, origin: str) -> str | None:
    """``None`` when ``rp_id`` may be the relying party of pages at ``origin`` (WebAuthn: the
    origin's host or a domain it is under), else why not."""
    host = urlsplit(origin).hostname or ""
    if host == rp_id or host.endswith("." + rp_id):
        return None
    return f"relying party id {rp_id} is not the host of origin {origin} or a domain above it"


def key_id_for(kind: KeyKind | str, public_key_b64: str) -> str:
    """The id of a public key of ``kind``. Raises ValueError when malformed."""
    if KeyKind(kind) is KeyKind.WEBAUTHN:
        return webauthn_key_id(public_key_b64)
    return key_id_of(public_key_b64)


class KeyRecord(Model):
    """One registered key, as the registry holds it and a dossier carries it."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    principal: Identifier = Field(description="the person (or worker, or admin) the key is for")
    principal_kind: PrincipalKind = PrincipalKind.PERSON
    kind: KeyKind = KeyKind.ED25519
    public_key: str = Field(
        description="base64 of the raw 32-byte Ed25519 public key, or for a passkey of the "
        "65-byte uncompressed P-256 point"
    )
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None
    revoked_at: AwareDatetime | None = None
    revoked_reason: ShortText = ""
    #: The key id of the admin (or trust root) whose signature is ``certificate``; a trust root
    #: certifies itself.
    certified_by: str = Field(pattern=KEY_ID_PATTERN)
    certificate: str = Field(description="base64 Ed25519 signature over certificate_bytes()")
    #: A passkey's WebAuthn credential id (base64url), relying party id and origin; ``None``
    #: for other keys (and then left out of the record's JSON, so old records stay as they were).
    credential_id: str | None = Field(default=None, pattern=CREDENTIAL_ID_PATTERN)
    rp_id: str | None = Field(default=None, pattern=RP_ID_PATTERN)
    origin: str | None = Field(default=None, pattern=ORIGIN_PATTERN)

    @model_validator(mode="after")
    def _passkey_fields_for_passkeys(self) -> KeyRecord:
        fields = (self.credential_id, self.rp_id, self.origin)
        if self.kind is KeyKind.WEBAUTHN:
            if None in fields:
                raise ValueError("a passkey names its credential id, relying party id and origin")
            assert self.origin is not None and self.rp_id is not None
            why = rp_id_problem(self.rp_id, self.origin)
            if why is not None:
                raise ValueError(why)
        elif fields != (None, None, None):
            raise ValueError("only a passkey names a credential id, relying party id or origin")
        return self

    @model_serializer(mode="wrap")
    def _without_passkey_fields(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        del info
        data: dict[str, Any] = handler(self)
        for name in ("credential_id", "rp_id", "origin"):
            if getattr(self, name) is None:
                data.pop(name, None)
        return data

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
    body: dict[str, Any] = {
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
    if record.kind is KeyKind.WEBAUTHN:
        # A passkey counts only for its credential, relying party and origin: all certified.
        body["credential_id"] = record.credential_id
        body["rp_id"] = record.rp_id
        body["origin"] = record.origin
    return canonical_json(body)


class PendingPasskey(Model):
    """A passkey a person asked to register (through the console), waiting for an identity
    admin. It counts for nothing until approved: the approval registers a :class:`KeyRecord`
    of kind ``webauthn``, certified and logged like any key."""

    enrollment_id: str = Field(pattern=r"^pk-[0-9a-f]{12}$")
    person: Identifier
    key_id: str = Field(pattern=KEY_ID_PATTERN)
    credential_id: str = Field(pattern=CREDENTIAL_ID_PATTERN)
    public_key: str
    rp_id: str = Field(pattern=RP_ID_PATTERN)
    origin: str = Field(pattern=ORIGIN_PATTERN)
    label: ShortText = ""
    requested_at: AwareDatetime
    state: Literal["pending", "approved", "rejected"] = "pending"
    decided_at: AwareDatetime | None = None
    #: The admin key id that approved or rejected it.
    decided_by: str | None = None
    reason: ShortText = ""

    @model_validator(mode="after")
    def _rp_fits_origin(self) -> PendingPasskey:
        why = rp_id_problem(self.rp_id, self.origin)
        if why is not None:
            raise ValueError(why)
        return self


class SsoLink(Model):
    """A single sign-on identity (OIDC issuer and subject) linked to a roster person by an
    identity admin (logged and signed like a key)."""

    person: Identifier
    issuer: SsoIssuer
    subject: SsoSubject
    email: ShortText | None = None
    linked_at: AwareDatetime
    linked_by: str = Field(pattern=KEY_ID_PATTERN)

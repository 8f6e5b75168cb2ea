"""The key table: reading its rows, checking what a change asks for, refusing it in one line.

The registry (:mod:`gatekeeper.identity.registry`) calls these inside its transactions; each
refusal is an :class:`IdentityRefused` (or :class:`UnknownKey`) and changes nothing.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Connection

from gatekeeper.adapters.registry.tables import identity_keys
from gatekeeper.errors import InputError
from gatekeeper.identity.keys import KeyKind, KeyRecord, PrincipalKind, key_id_of
from gatekeeper.identity.log import private_key_id
from gatekeeper.models.base import Identifier, ShortText

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_SHORT_TEXT: TypeAdapter[str] = TypeAdapter(ShortText)


class IdentityRefused(InputError):
    """A change to the registry that is not allowed (who asks, or what they ask). Nothing changed."""


class UnknownKey(InputError):
    """No registered key has this id."""


def principal(value: str) -> str:
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        raise IdentityRefused(
            f"'{value}' is not a principal id (lower-case letters, digits, . _ -)"
        ) from None


def principal_kind(value: PrincipalKind | str) -> PrincipalKind:
    try:
        return PrincipalKind(value)
    except ValueError:
        choices = ", ".join(kind.value for kind in PrincipalKind)
        raise IdentityRefused(f"'{value}' is not a principal kind ({choices})") from None


def key_id(public_key: str) -> str:
    try:
        return key_id_of(public_key)
    except ValueError as err:
        raise IdentityRefused(f"public key: {err}") from None


def reason(value: str) -> str:
    try:
        reason = _SHORT_TEXT.validate_python(value).strip()
    except ValidationError as err:
        raise IdentityRefused(f"reason: {err.errors()[0]['msg']}") from None
    if not reason:
        raise IdentityRefused("a revocation needs a reason")
    return reason


def record(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row.key_id,
        principal=row.principal,
        principal_kind=PrincipalKind(row.principal_kind),
        kind=KeyKind(row.kind),
        public_key=row.public_key,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
        certified_by=row.certified_by,
        certificate=row.certificate,
        credential_id=row.credential_id,
        rp_id=row.rp_id,
        origin=row.origin,
    )


def row_by_id(connection: Connection, key_id: str) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.key_id == key_id)
    ).first()


def row_by_public_key(connection: Connection, public_key: str) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.public_key == public_key)
    ).first()


def root_row(connection: Connection) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.certified_by == identity_keys.c.key_id)
    ).first()


def admin_of(connection: Connection, admin_key: Ed25519PrivateKey, now: datetime) -> KeyRecord:
    """The admin record of ``admin_key``, if it may make changes now; else a one-line refusal."""
    admin_id = private_key_id(admin_key)
    row = row_by_id(connection, admin_id)
    if row is None:
        if root_row(connection) is None:
            raise IdentityRefused(
                "the identity registry has no trust root yet; run `gatekeeper identity init` first"
            )
        raise IdentityRefused(
            f"the admin key {admin_id} is not registered; only a registered identity admin may "
            "change keys"
        )
    admin = record(row)
    if admin.principal_kind is not PrincipalKind.ADMIN:
        raise IdentityRefused(
            f"key {admin_id} belongs to {admin.principal}, a {admin.principal_kind.value}, not an "
            "identity admin"
        )
    why = admin.why_not_valid_at(now)
    if why is not None:
        raise IdentityRefused(f"admin {why}; it can no longer change keys")
    return admin


def target(connection: Connection, key_id: str) -> KeyRecord:
    row = row_by_id(connection, key_id)
    if row is None:
        raise UnknownKey(f"key {key_id} is not registered (see `gatekeeper keys list`)")
    return record(row)


def refuse_revocation(target: KeyRecord, when: datetime) -> None:
    if target.certified_by == target.key_id:
        raise IdentityRefused(
            f"key {target.key_id} is the trust root and cannot be revoked or rotated"
        )
    if target.revoked_at is not None and target.revoked_at <= when:
        raise IdentityRefused(
            f"key {target.key_id} of {target.principal} is already revoked from "
            f"{target.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
        )


def refuse_duplicate(connection: Connection, public_key: str, key_id: str, principal: str) -> None:
    row = row_by_public_key(connection, public_key) or row_by_id(connection, key_id)
    if row is None:
        return
    if row.principal == principal:
        raise IdentityRefused(f"public key {key_id} is already registered to {principal}")
    raise IdentityRefused(
        f"public key {key_id} is already registered to someone else ({row.principal}); "
        "a key belongs to one principal"
    )


def refuse_other_kind(connection: Connection, principal: str, kind: PrincipalKind) -> None:
    row = connection.execute(
        sa.select(identity_keys.c.principal_kind).where(identity_keys.c.principal == principal)
    ).first()
    if row is not None and row.principal_kind != kind.value:
        raise IdentityRefused(
            f"{principal} already has keys as a {row.principal_kind}, not a {kind.value}"
        )


def insert_key(connection: Connection, record: KeyRecord, now: datetime, seq: int) -> None:
    connection.execute(
        sa.insert(identity_keys).values(
            key_id=record.key_id,
            principal=record.principal,
            principal_kind=record.principal_kind.value,
            kind=record.kind.value,
            public_key=record.public_key,
            valid_from=record.valid_from,
            valid_until=record.valid_until,
            revoked_at=record.revoked_at,
            revoked_reason=record.revoked_reason,
            certified_by=record.certified_by,
            certificate=record.certificate,
            registered_at=now,
            log_seq=seq,
            credential_id=record.credential_id,
            rp_id=record.rp_id,
            origin=record.origin,
        )
    )


def set_revoked(connection: Connection, key_id: str, when: datetime, reason: str) -> None:
    connection.execute(
        sa.update(identity_keys)
        .where(identity_keys.c.key_id == key_id)
        .values(revoked_at=when, revoked_reason=reason)
    )


def decode_public_key(value: str) -> str:
    """``value`` as a registrable public key (base64 of 32 raw bytes), or a one-line refusal."""
    key_id(value)
    return base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii")

"""The identity log: every change to the registered keys, as a hash-chained, admin-signed entry.

Each entry's ``body`` is exactly what was hashed and signed (its canonical JSON) and carries the
hash of the entry before it. :func:`append` writes one entry; :func:`replay` re-checks the whole
log (sequence, links, hashes, signatures by admins valid at the time, certificates) and compares
what it leads to with the key table, so an edited entry or a key written in by hand is found.
The registry (:mod:`gatekeeper.identity.registry`) is the only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from gatekeeper import signing
from gatekeeper.adapters.registry.tables import identity_log
from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.identity.keys import KeyRecord, PrincipalKind, certificate_bytes, key_id_of
from gatekeeper.models.base import Model

#: The ``prev_hash`` of the first entry of the identity log.
GENESIS = "0" * 64


class LogAction:
    """The kinds of identity log entries."""

    INIT_ROOT = "init_root"
    REGISTER = "register"
    REVOKE = "revoke"
    ROTATE = "rotate"


class IdentityLogEntry(Model):
    """One entry of the identity log, as stored.

    ``body`` is exactly what was hashed and signed (its canonical JSON): ``v``, ``type``, ``seq``,
    ``at``, ``action``, ``by`` (the admin key id), ``prev`` (the previous entry's hash), and
    ``key`` (the registered record, for ``init_root``, ``register``, ``rotate``) and/or
    ``revoke`` (``key_id``, ``at``, ``reason``, for ``revoke`` and ``rotate``).
    """

    seq: int
    at: datetime
    action: str
    key_id: str
    by_key_id: str
    body: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str


def private_key_id(private_key: Ed25519PrivateKey) -> str:
    """The key id of a private key's public half."""
    return key_id_of(signing.public_key_b64(private_key))


def iso(value: datetime | None) -> str | None:
    """How the log writes a time: ISO 8601 in UTC (``None`` stays ``None``)."""
    return value.astimezone(UTC).isoformat() if value is not None else None


@dataclass(frozen=True)
class LogChange:
    """An entry about to be appended (before seq/prev/hash/signature)."""

    action: str
    key_id: str
    key: KeyRecord | None = None
    revoke: dict[str, Any] | None = None


def certified(record: KeyRecord, signer: Ed25519PrivateKey) -> KeyRecord:
    return record.model_copy(
        update={"certificate": signing.sign(signer, certificate_bytes(record))}
    )


def certificate_ok(record: KeyRecord, certifier: KeyRecord) -> bool:
    return record.certified_by == certifier.key_id and signing.verify(
        certifier.public_key, certificate_bytes(record), record.certificate
    )


def _entry_body(change: LogChange, *, seq: int, at: datetime, by: str, prev: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "type": "gatekeeper.identity-log-entry",
        "seq": seq,
        "at": iso(at),
        "action": change.action,
        "key_id": change.key_id,
        "by": by,
        "prev": prev,
    }
    if change.key is not None:
        body["key"] = change.key.model_dump(mode="json")
    if change.revoke is not None:
        body["revoke"] = change.revoke
    return body


def append(
    connection: Connection, change: LogChange, signer: Ed25519PrivateKey, now: datetime
) -> int:
    """Append ``change`` to the identity log, signed by ``signer``; its sequence number."""
    last = connection.execute(
        sa.select(identity_log.c.seq, identity_log.c.hash)
        .order_by(identity_log.c.seq.desc())
        .limit(1)
    ).first()
    seq = (last.seq if last is not None else 0) + 1
    prev = last.hash if last is not None else GENESIS
    by = private_key_id(signer)
    body = _entry_body(change, seq=seq, at=now, by=by, prev=prev)
    payload = canonical_json(body)
    connection.execute(
        sa.insert(identity_log).values(
            seq=seq,
            at=now,
            action=change.action,
            key_id=change.key_id,
            by_key_id=by,
            body=body,
            prev_hash=prev,
            hash=sha256_hex(payload),
            signature=signing.sign(signer, payload),
        )
    )
    return seq


def check_entry(
    entry: IdentityLogEntry, index: int, prev: str, state: dict[str, KeyRecord]
) -> str | None:
    """Apply ``entry`` to ``state`` if it holds; else what is wrong with it."""
    body = entry.body
    payload = canonical_json(body)
    if entry.seq != index or body.get("seq") != index:
        return f"out of sequence (expected {index})"
    if entry.prev_hash != prev or body.get("prev") != prev:
        return "does not link to the entry before it (the log was cut or reordered)"
    if sha256_hex(payload) != entry.hash:
        return "its hash does not match its content (the entry was edited)"
    if (
        body.get("action") != entry.action
        or body.get("key_id") != entry.key_id
        or body.get("by") != entry.by_key_id
        or body.get("at") != iso(entry.at)
    ):
        return "its columns differ from its signed content"
    try:
        key = KeyRecord.model_validate(body["key"]) if "key" in body else None
        revoke = body.get("revoke")
        at = datetime.fromisoformat(revoke["at"]) if revoke is not None else None
    except (ValidationError, KeyError, TypeError, ValueError):
        return "its content is malformed"
    action = entry.action
    if action == LogAction.INIT_ROOT:
        if index != 1 or key is None or key.certified_by != key.key_id:
            return "a trust-root entry must be the first and certify itself"
        signer = key
    else:
        signer_or_none = state.get(entry.by_key_id)
        if signer_or_none is None:
            return f"signed by {entry.by_key_id}, which was not registered before it"
        signer = signer_or_none
        if signer.principal_kind is not PrincipalKind.ADMIN:
            return f"signed by {entry.by_key_id} of {signer.principal}, who is not an admin"
        why = signer.why_not_valid_at(entry.at)
        if why is not None:
            return f"signed by an admin key that was not valid then ({why})"
    if not signing.verify(signer.public_key, payload, entry.signature):
        return f"its signature does not verify with {signer.key_id}"
    if key is not None:
        if key.key_id != key_id_of(key.public_key) or key.key_id != entry.key_id:
            return "the key's id does not match its public key"
        if key.certified_by != signer.key_id or not certificate_ok(key, signer):
            return f"the certificate of {key.key_id} does not verify with {signer.key_id}"
        if key.key_id in state or any(r.public_key == key.public_key for r in state.values()):
            return f"key {key.key_id} is registered twice"
        state[key.key_id] = key
    if revoke is not None:
        target = state.get(revoke.get("key_id", ""))
        if target is None or at is None:
            return "revokes a key that was never registered"
        state[target.key_id] = target.model_copy(
            update={"revoked_at": at.astimezone(UTC), "revoked_reason": revoke.get("reason", "")}
        )
    if key is None and revoke is None:
        return f"unknown action {action!r}"
    return None


def replay(
    entries: list[IdentityLogEntry], keys: list[KeyRecord], trust_root: str | None = None
) -> list[str]:
    """Re-check ``entries`` from the first and compare what they lead to with the key table
    (``keys``); the problems found, empty when the log holds. The replay stops at the first
    broken entry (what follows it cannot be trusted), naming it; with ``trust_root``, the log's
    root must be that key."""
    table = {record.key_id: record for record in keys}
    problems: list[str] = []
    state: dict[str, KeyRecord] = {}
    prev = GENESIS
    for index, entry in enumerate(entries, start=1):
        problem = check_entry(entry, index, prev, state)
        if problem is not None:
            problems.append(f"identity log entry {entry.seq}: {problem}")
            return problems
        prev = entry.hash
    root = next((r for r in state.values() if r.certified_by == r.key_id), None)
    if trust_root is not None and (root is None or root.key_id != trust_root):
        found = root.key_id if root is not None else "none"
        problems.append(f"the identity log's trust root is {found}, not the pinned {trust_root}")
    for key_id, record in table.items():
        expected = state.get(key_id)
        if expected is None:
            problems.append(f"key {key_id} ({record.principal}) is not in the identity log")
        elif expected != record:
            problems.append(
                f"key {key_id} ({record.principal}) differs from what the identity log says"
            )
    for key_id, record in state.items():
        if key_id not in table:
            problems.append(f"key {key_id} ({record.principal}) is in the log but not the table")
    return problems

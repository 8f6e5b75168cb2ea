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
from gatekeeper.identity.keys import (
    KeyKind,
    KeyRecord,
    PrincipalKind,
    certificate_bytes,
    key_id_for,
    key_id_of,
)
from gatekeeper.models.base import Model

#: The ``prev_hash`` of the first entry of the identity log.
GENESIS = "0" * 64


class LogAction:
    """The kinds of identity log entries."""

    INIT_ROOT = "init_root"
    REGISTER = "register"
    REVOKE = "revoke"
    ROTATE = "rotate"
    #: A passkey a person enrolled, approved by an admin: registers the ``webauthn`` key.
    APPROVE_PASSKEY = "approve_passkey"
    #: A passkey enrollment an admin refused (``passkey``: enrollment id, person, key id, reason).
    REJECT_PASSKEY = "reject_passkey"
    #: A single sign-on identity linked to / unlinked from a person (``sso``).
    LINK_SSO = "link_sso"
    UNLINK_SSO = "unlink_sso"


class IdentityLogEntry(Model):
    """One entry of the identity log, as stored.

    ``body`` is exactly what was hashed and signed (its canonical JSON): ``v``, ``type``, ``seq``,
    ``at``, ``action``, ``by`` (the admin key id), ``prev`` (the previous entry's hash), and
    ``key`` (the registered record, for ``init_root``, ``register``, ``rotate``,
    ``approve_passkey``) and/or ``revoke`` (``key_id``, ``at``, ``reason``, for ``revoke`` and
    ``rotate``), ``passkey`` (the enrollment decided: ``enrollment_id``, ``person`` and for a
    rejection ``reason``; for ``approve_passkey`` and ``reject_passkey``), ``sso`` (``person``,
    ``issuer``, ``subject``, ``email``; for ``link_sso`` and ``unlink_sso``).
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
    passkey: dict[str, Any] | None = None
    sso: dict[str, Any] | None = None


def sso_key(issuer: str, subject: str) -> tuple[str, str]:
    return (issuer, subject)


@dataclass
class LogState:
    """What the log leads to: the keys, and the single sign-on links ((issuer, subject) ->
    ``sso`` part of the entry that linked it)."""

    keys: dict[str, KeyRecord]
    sso: dict[tuple[str, str], dict[str, Any]]


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
    if change.passkey is not None:
        body["passkey"] = change.passkey
    if change.sso is not None:
        body["sso"] = change.sso
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


def check_entry(entry: IdentityLogEntry, index: int, prev: str, state: LogState) -> str | None:
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
        passkey = body.get("passkey")
        sso = body.get("sso")
        if passkey is not None and not isinstance(passkey.get("enrollment_id"), str):
            raise TypeError
        if sso is not None and not all(
            isinstance(sso.get(name), str) for name in ("person", "issuer", "subject")
        ):
            raise TypeError
    except (ValidationError, KeyError, TypeError, ValueError, AttributeError):
        return "its content is malformed"
    action = entry.action
    keys = state.keys
    if action == LogAction.INIT_ROOT:
        if index != 1 or key is None or key.certified_by != key.key_id:
            return "a trust-root entry must be the first and certify itself"
        signer = key
    else:
        signer_or_none = keys.get(entry.by_key_id)
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
        try:
            derived = key_id_for(key.kind, key.public_key)
        except ValueError:
            derived = ""
        if key.key_id != derived or key.key_id != entry.key_id:
            return "the key's id does not match its public key"
        if (key.kind is KeyKind.WEBAUTHN) != (action == LogAction.APPROVE_PASSKEY):
            return "a passkey is registered by approving its enrollment, and only a passkey so"
        if key.certified_by != signer.key_id or not certificate_ok(key, signer):
            return f"the certificate of {key.key_id} does not verify with {signer.key_id}"
        if key.key_id in keys or any(r.public_key == key.public_key for r in keys.values()):
            return f"key {key.key_id} is registered twice"
        keys[key.key_id] = key
    if revoke is not None:
        target = keys.get(revoke.get("key_id", ""))
        if target is None or at is None:
            return "revokes a key that was never registered"
        keys[target.key_id] = target.model_copy(
            update={"revoked_at": at.astimezone(UTC), "revoked_reason": revoke.get("reason", "")}
        )
    if action in (LogAction.APPROVE_PASSKEY, LogAction.REJECT_PASSKEY) and passkey is None:
        return f"a {action} entry names no enrollment"
    if action == LogAction.APPROVE_PASSKEY and (
        key is None or passkey is None or passkey.get("person") != key.principal
    ):
        return "approves a passkey for someone other than who enrolled it"
    if sso is not None:
        problem = _apply_sso(action, sso, state)
        if problem is not None:
            return problem
    elif action in (LogAction.LINK_SSO, LogAction.UNLINK_SSO):
        return f"a {action} entry names no single sign-on identity"
    if key is None and revoke is None and passkey is None and sso is None:
        return f"unknown action {action!r}"
    return None


def _apply_sso(action: str, sso: dict[str, Any], state: LogState) -> str | None:
    where = sso_key(sso["issuer"], sso["subject"])
    linked = state.sso.get(where)
    if action == LogAction.LINK_SSO:
        if linked is not None:
            return f"links {sso['issuer']} {sso['subject']} again (linked to {linked['person']})"
        state.sso[where] = sso
        return None
    if action == LogAction.UNLINK_SSO:
        if linked is None or linked["person"] != sso["person"]:
            return f"unlinks {sso['issuer']} {sso['subject']} from {sso['person']}, who it was not linked to"
        del state.sso[where]
        return None
    return f"a {action} entry cannot carry a single sign-on identity"


def replay(
    entries: list[IdentityLogEntry],
    keys: list[KeyRecord],
    trust_root: str | None = None,
    sso_links: dict[tuple[str, str], str] | None = None,
) -> list[str]:
    """Re-check ``entries`` from the first and compare what they lead to with the key table
    (``keys``) and the single sign-on links (``sso_links``: (issuer, subject) -> person); the
    problems found, empty when the log holds. The replay stops at the first broken entry (what
    follows it cannot be trusted), naming it; with ``trust_root``, the log's root must be that
    key."""
    table = {record.key_id: record for record in keys}
    problems: list[str] = []
    log_state = LogState(keys={}, sso={})
    state = log_state.keys
    prev = GENESIS
    for index, entry in enumerate(entries, start=1):
        problem = check_entry(entry, index, prev, log_state)
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
    for (issuer, subject), person in sorted((sso_links or {}).items()):
        linked = log_state.sso.get((issuer, subject))
        if linked is None:
            problems.append(
                f"the single sign-on link {issuer} {subject} -> {person} is not in the identity log"
            )
        elif linked["person"] != person:
            problems.append(
                f"the single sign-on link {issuer} {subject} names {person}, the identity log "
                f"{linked['person']}"
            )
    for (issuer, subject), linked in sorted(log_state.sso.items()):
        if (issuer, subject) not in (sso_links or {}):
            problems.append(
                f"the single sign-on link {issuer} {subject} -> {linked['person']} is in the log "
                "but not the table"
            )
    return problems

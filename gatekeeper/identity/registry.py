"""The identity registry: the keys a worker trusts, and the signed log of every change to them.

The registry lives in the registry database (SQLite under the data directory by default,
PostgreSQL by URL), next to the installed policies. It holds:

- ``identity_keys``: each registered key (:class:`~gatekeeper.identity.keys.KeyRecord`), with the
  certificate of the identity admin who registered it. The installation's *trust root* is the one
  key that certifies itself (:meth:`IdentityRegistry.init_root`); every other key is certified by
  an admin key (principal kind ``admin``), whose own certificate leads on to the root
  (:meth:`IdentityRegistry.chain_to_root`).
- ``identity_log``: every change (trust-root init, register, revoke, rotate) as an entry signed by
  the admin key that made it, each entry carrying the hash of the one before. The database refuses
  to update or delete an entry; :meth:`IdentityRegistry.verify_log` replays the whole log, re-checks
  every hash, signature and certificate, and compares the result with the key table, so a key
  written into the table by hand, or an edited entry, is found.

Only a registered admin key that is valid *now* may register, revoke or rotate; the refusal is one
line and changes nothing. A public key is registered once, to one principal. Revoking the trust
root is refused (a new installation gets a new root). Revoking an admin stops it from making
changes; the keys it certified stay valid until they are revoked themselves.

No Temporal imports: workers install an open registry as their key directory
(:mod:`gatekeeper.identity.authority`), and the CLI opens one per command.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.engine import Connection

from gatekeeper import signing
from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.tables import identity_keys, identity_log
from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.errors import InputError
from gatekeeper.identity.keys import (
    KeyKind,
    KeyRecord,
    PrincipalKind,
    certificate_bytes,
    key_id_of,
)
from gatekeeper.models.base import Identifier, Model, ShortText

log = structlog.get_logger(__name__)

#: Who the trust root is, as a principal.
ROOT_PRINCIPAL = "identity-root"
#: The ``prev_hash`` of the first entry of the identity log.
GENESIS = "0" * 64

_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
_SHORT_TEXT: TypeAdapter[str] = TypeAdapter(ShortText)


class IdentityRefused(InputError):
    """A change to the registry that is not allowed (who asks, or what they ask). Nothing changed."""


class UnknownKey(InputError):
    """No registered key has this id."""


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


@dataclass(frozen=True)
class _Change:
    """An entry about to be appended (before seq/prev/hash/signature)."""

    action: str
    key_id: str
    key: KeyRecord | None = None
    revoke: dict[str, Any] | None = None


class IdentityRegistry(Database):
    """The registered keys and the identity log behind one SQLAlchemy URL. Thread-safe.

    Opening upgrades the schema to the newest migration, like the other registry stores.
    ``clock`` gives "now" (validity checks, registration times); tests pass their own. With
    ``trust_root`` (a key id: the worker passes ``[identity] trust_root``), only keys whose
    certificates lead to that root are returned by :meth:`key`.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        trust_root: str | None = None,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock
        self._trust_root = trust_root

    # -- reading (the key directory the validators use) -------------------------------------

    def key(self, key_id: str) -> KeyRecord | None:
        """The registered key with this id, revoked or not, or ``None``.

        A key whose certificates do not lead to the trust root (a row written into the table by
        hand, or certified by a key that is not an admin) is ``None`` too, and logged.
        """
        with self._read("read a key") as connection:
            try:
                return self._chain(connection, key_id)[0]
            except UnknownKey:
                return None
            except IdentityRefused as err:
                log.warning(
                    "untrusted key in the identity registry", key_id=key_id, reason=str(err)
                )
                return None

    def keys(self, principal: str | None = None) -> list[KeyRecord]:
        """Every registered key (of ``principal``), by principal then registration order."""
        query = sa.select(identity_keys).order_by(
            identity_keys.c.principal, identity_keys.c.log_seq
        )
        if principal is not None:
            query = query.where(identity_keys.c.principal == principal)
        with self._read("list keys") as connection:
            rows = connection.execute(query).all()
        return [_record(row) for row in rows]

    def root(self) -> KeyRecord | None:
        """The trust root (the key that certifies itself), if the registry has one."""
        with self._read("read the trust root") as connection:
            row = _root_row(connection)
        return _record(row) if row is not None else None

    def valid_keys(self, principal: str, at: datetime | None = None) -> list[KeyRecord]:
        """``principal``'s keys that are valid at ``at`` (default now)."""
        when = at or self._clock()
        return [record for record in self.keys(principal) if record.valid_at(when)]

    def chain_to_root(self, key_id: str) -> list[KeyRecord]:
        """The key and the keys that certified it, ending at the trust root.

        Every certificate on the way is checked against its certifier's public key, and the root
        must be the pinned one if the registry was opened with ``trust_root``.

        Raises:
            UnknownKey: the key, or a certifier on the way, is not registered.
            IdentityRefused: a certificate does not verify, or the chain does not end at the root.
        """
        with self._read(f"read the certificate chain of {key_id}") as connection:
            return self._chain(connection, key_id)

    def _chain(self, connection: Connection, key_id: str) -> list[KeyRecord]:
        chain: list[KeyRecord] = []
        current = key_id
        while True:
            row = _row_by_id(connection, current)
            if row is None:
                if not chain:
                    raise UnknownKey(f"key {key_id} is not registered")
                raise IdentityRefused(
                    f"key {chain[-1].key_id} is certified by {current}, which is not registered"
                )
            record = _record(row)
            if any(seen.key_id == record.key_id for seen in chain):
                raise IdentityRefused(f"the certificate chain of {key_id} loops")
            if chain and record.principal_kind is not PrincipalKind.ADMIN:
                raise IdentityRefused(
                    f"key {chain[-1].key_id} is certified by {record.key_id}, which is not an "
                    "admin key"
                )
            if chain and not _certificate_ok(chain[-1], record):
                raise IdentityRefused(
                    f"the certificate of key {chain[-1].key_id} does not verify with "
                    f"{record.key_id}'s key"
                )
            chain.append(record)
            if record.certified_by == record.key_id:
                if not _certificate_ok(record, record):
                    raise IdentityRefused(f"the root {record.key_id} does not certify itself")
                if self._trust_root is not None and record.key_id != self._trust_root:
                    raise IdentityRefused(
                        f"key {key_id} chains to {record.key_id}, not the pinned trust root "
                        f"{self._trust_root}"
                    )
                return chain
            current = record.certified_by

    def _admin(
        self, connection: Connection, admin_key: Ed25519PrivateKey, now: datetime
    ) -> KeyRecord:
        admin = _admin(connection, admin_key, now)
        try:
            self._chain(connection, admin.key_id)
        except IdentityRefused as err:
            raise IdentityRefused(f"the admin key {admin.key_id} is not trusted: {err}") from None
        return admin

    def log(self) -> list[IdentityLogEntry]:
        """The identity log, oldest entry first."""
        with self._read("read the identity log") as connection:
            rows = connection.execute(sa.select(identity_log).order_by(identity_log.c.seq)).all()
        return [
            IdentityLogEntry(
                seq=row.seq,
                at=row.at,
                action=row.action,
                key_id=row.key_id,
                by_key_id=row.by_key_id,
                body=row.body,
                prev_hash=row.prev_hash,
                hash=row.hash,
                signature=row.signature,
            )
            for row in rows
        ]

    def verify_log(self, trust_root: str | None = None) -> list[str]:
        """Replay the identity log and re-check it; the problems found (empty when it holds).

        Checks each entry's sequence number, its link to the previous hash, its own hash, its
        signature by the admin key named (registered earlier in the log, an admin, valid at the
        entry's time), every certificate, and that the key table is exactly what the log leads
        to. With ``trust_root``, the log's root must be that key. The replay stops at the first
        broken entry (what follows it cannot be trusted), naming it.
        """
        entries = self.log()
        table = {record.key_id: record for record in self.keys()}
        problems: list[str] = []
        state: dict[str, KeyRecord] = {}
        prev = GENESIS
        for index, entry in enumerate(entries, start=1):
            problem = _check_entry(entry, index, prev, state)
            if problem is not None:
                problems.append(f"identity log entry {entry.seq}: {problem}")
                return problems
            prev = entry.hash
        root = next((r for r in state.values() if r.certified_by == r.key_id), None)
        if trust_root is not None and (root is None or root.key_id != trust_root):
            found = root.key_id if root is not None else "none"
            problems.append(
                f"the identity log's trust root is {found}, not the pinned {trust_root}"
            )
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
                problems.append(
                    f"key {key_id} ({record.principal}) is in the log but not the table"
                )
        return problems

    # -- changing (each change signed by an admin key and logged) ----------------------------

    def init_root(
        self, private_key: Ed25519PrivateKey, *, principal: str = ROOT_PRINCIPAL
    ) -> KeyRecord:
        """Register ``private_key``'s public half as the installation's trust root.

        The root is an admin key that certifies itself; the log's first entry records it.

        Raises:
            IdentityRefused: the registry already has a trust root.
        """
        principal = _principal(principal)
        public = signing.public_key_b64(private_key)
        key_id = key_id_of(public)
        now = self._clock()
        with self._write("initialise the trust root") as connection:
            existing = _root_row(connection)
            if existing is not None:
                raise IdentityRefused(
                    f"the registry already has a trust root ({existing.key_id}); "
                    "an installation has one root"
                )
            if _row_by_public_key(connection, public) is not None:
                raise IdentityRefused(f"public key {key_id} is already registered")
            record = _certified(
                KeyRecord(
                    key_id=key_id,
                    principal=principal,
                    principal_kind=PrincipalKind.ADMIN,
                    kind=KeyKind.ED25519,
                    public_key=public,
                    valid_from=now,
                    certified_by=key_id,
                    certificate="",
                ),
                private_key,
            )
            seq = _append(
                connection, _Change(LogAction.INIT_ROOT, key_id, key=record), private_key, now
            )
            _insert_key(connection, record, now, seq)
        return record

    def register(
        self,
        *,
        principal: str,
        principal_kind: PrincipalKind | str = PrincipalKind.PERSON,
        public_key: str,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        admin_key: Ed25519PrivateKey,
    ) -> KeyRecord:
        """Register ``public_key`` for ``principal``, certified by ``admin_key``.

        Raises:
            IdentityRefused: ``admin_key`` is not a registered admin key valid now; the public
                key is already registered; the principal already has keys of another kind; the
                validity window is empty.
        """
        principal = _principal(principal)
        kind = _principal_kind(principal_kind)
        key_id = _key_id(public_key)
        now = self._clock()
        start = (valid_from or now).astimezone(UTC)
        end = valid_until.astimezone(UTC) if valid_until is not None else None
        if end is not None and end <= start:
            raise IdentityRefused(
                f"valid until {end:%Y-%m-%d %H:%M} UTC is not after valid from "
                f"{start:%Y-%m-%d %H:%M} UTC"
            )
        with self._write(f"register a key for {principal}") as connection:
            admin = self._admin(connection, admin_key, now)
            _refuse_duplicate(connection, public_key, key_id, principal)
            _refuse_other_kind(connection, principal, kind)
            record = _certified(
                KeyRecord(
                    key_id=key_id,
                    principal=principal,
                    principal_kind=kind,
                    kind=KeyKind.ED25519,
                    public_key=public_key,
                    valid_from=start,
                    valid_until=end,
                    certified_by=admin.key_id,
                    certificate="",
                ),
                admin_key,
            )
            seq = _append(
                connection, _Change(LogAction.REGISTER, key_id, key=record), admin_key, now
            )
            _insert_key(connection, record, now, seq)
        return record

    def revoke(
        self,
        key_id: str,
        *,
        at: datetime | None = None,
        reason: str,
        admin_key: Ed25519PrivateKey,
    ) -> KeyRecord:
        """Revoke ``key_id`` from ``at`` (default now): signatures made at or after it no longer
        count. A key already revoked can only have its revocation moved earlier.

        Raises:
            UnknownKey: no such key.
            IdentityRefused: ``admin_key`` is not a valid admin key; the key is the trust root;
                it is already revoked at or before ``at``; the reason is empty.
        """
        reason = _reason(reason)
        now = self._clock()
        when = (at or now).astimezone(UTC)
        with self._write(f"revoke key {key_id}") as connection:
            self._admin(connection, admin_key, now)
            target = _target(connection, key_id)
            _refuse_revocation(target, when)
            _append(
                connection,
                _Change(
                    LogAction.REVOKE,
                    key_id,
                    revoke={"key_id": key_id, "at": _iso(when), "reason": reason},
                ),
                admin_key,
                now,
            )
            _set_revoked(connection, key_id, when, reason)
            return _record(_row_by_id(connection, key_id))

    def rotate(
        self,
        key_id: str,
        *,
        public_key: str,
        grace: timedelta = timedelta(0),
        valid_until: datetime | None = None,
        admin_key: Ed25519PrivateKey,
    ) -> KeyRecord:
        """Replace ``key_id`` by ``public_key`` (same principal and kind): the new key is valid
        from now, the old one is revoked ``grace`` from now. One log entry records both.

        Raises:
            UnknownKey: no such key.
            IdentityRefused: as for :meth:`register` and :meth:`revoke`, or the old key is not
                valid now (register a new key instead).
        """
        new_id = _key_id(public_key)
        if grace < timedelta(0):
            raise IdentityRefused("the grace period cannot be negative")
        now = self._clock()
        retire = now + grace
        if valid_until is not None and valid_until.astimezone(UTC) <= now:
            raise IdentityRefused(f"valid until {valid_until:%Y-%m-%d %H:%M} UTC is not after now")
        with self._write(f"rotate key {key_id}") as connection:
            admin = self._admin(connection, admin_key, now)
            old = _target(connection, key_id)
            why = old.why_not_valid_at(now)
            if why is not None:
                raise IdentityRefused(f"{why}; register a new key instead of rotating it")
            _refuse_revocation(old, retire)
            _refuse_duplicate(connection, public_key, new_id, old.principal)
            record = _certified(
                KeyRecord(
                    key_id=new_id,
                    principal=old.principal,
                    principal_kind=old.principal_kind,
                    kind=KeyKind.ED25519,
                    public_key=public_key,
                    valid_from=now,
                    valid_until=valid_until.astimezone(UTC) if valid_until else None,
                    certified_by=admin.key_id,
                    certificate="",
                ),
                admin_key,
            )
            reason = f"rotated to {new_id}"
            seq = _append(
                connection,
                _Change(
                    LogAction.ROTATE,
                    new_id,
                    key=record,
                    revoke={"key_id": key_id, "at": _iso(retire), "reason": reason},
                ),
                admin_key,
                now,
            )
            _insert_key(connection, record, now, seq)
            _set_revoked(connection, key_id, retire, reason)
        return record


# -- helpers -------------------------------------------------------------------------------------


def _principal(value: str) -> str:
    try:
        return _IDENTIFIER.validate_python(value)
    except ValidationError:
        raise IdentityRefused(
            f"'{value}' is not a principal id (lower-case letters, digits, . _ -)"
        ) from None


def _principal_kind(value: PrincipalKind | str) -> PrincipalKind:
    try:
        return PrincipalKind(value)
    except ValueError:
        choices = ", ".join(kind.value for kind in PrincipalKind)
        raise IdentityRefused(f"'{value}' is not a principal kind ({choices})") from None


def _key_id(public_key: str) -> str:
    try:
        return key_id_of(public_key)
    except ValueError as err:
        raise IdentityRefused(f"public key: {err}") from None


def _reason(value: str) -> str:
    try:
        reason = _SHORT_TEXT.validate_python(value).strip()
    except ValidationError as err:
        raise IdentityRefused(f"reason: {err.errors()[0]['msg']}") from None
    if not reason:
        raise IdentityRefused("a revocation needs a reason")
    return reason


def _record(row: Any) -> KeyRecord:
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
    )


def _certified(record: KeyRecord, signer: Ed25519PrivateKey) -> KeyRecord:
    return record.model_copy(
        update={"certificate": signing.sign(signer, certificate_bytes(record))}
    )


def _certificate_ok(record: KeyRecord, certifier: KeyRecord) -> bool:
    return record.certified_by == certifier.key_id and signing.verify(
        certifier.public_key, certificate_bytes(record), record.certificate
    )


def _row_by_id(connection: Connection, key_id: str) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.key_id == key_id)
    ).first()


def _row_by_public_key(connection: Connection, public_key: str) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.public_key == public_key)
    ).first()


def _root_row(connection: Connection) -> Any:
    return connection.execute(
        sa.select(identity_keys).where(identity_keys.c.certified_by == identity_keys.c.key_id)
    ).first()


def _admin(connection: Connection, admin_key: Ed25519PrivateKey, now: datetime) -> KeyRecord:
    """The admin record of ``admin_key``, if it may make changes now; else a one-line refusal."""
    admin_id = private_key_id(admin_key)
    row = _row_by_id(connection, admin_id)
    if row is None:
        if _root_row(connection) is None:
            raise IdentityRefused(
                "the identity registry has no trust root yet; run `gatekeeper identity init` first"
            )
        raise IdentityRefused(
            f"the admin key {admin_id} is not registered; only a registered identity admin may "
            "change keys"
        )
    admin = _record(row)
    if admin.principal_kind is not PrincipalKind.ADMIN:
        raise IdentityRefused(
            f"key {admin_id} belongs to {admin.principal}, a {admin.principal_kind.value}, not an "
            "identity admin"
        )
    why = admin.why_not_valid_at(now)
    if why is not None:
        raise IdentityRefused(f"admin {why}; it can no longer change keys")
    return admin


def _target(connection: Connection, key_id: str) -> KeyRecord:
    row = _row_by_id(connection, key_id)
    if row is None:
        raise UnknownKey(f"key {key_id} is not registered (see `gatekeeper keys list`)")
    return _record(row)


def _refuse_revocation(target: KeyRecord, when: datetime) -> None:
    if target.certified_by == target.key_id:
        raise IdentityRefused(
            f"key {target.key_id} is the trust root and cannot be revoked or rotated"
        )
    if target.revoked_at is not None and target.revoked_at <= when:
        raise IdentityRefused(
            f"key {target.key_id} of {target.principal} is already revoked from "
            f"{target.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
        )


def _refuse_duplicate(connection: Connection, public_key: str, key_id: str, principal: str) -> None:
    row = _row_by_public_key(connection, public_key) or _row_by_id(connection, key_id)
    if row is None:
        return
    if row.principal == principal:
        raise IdentityRefused(f"public key {key_id} is already registered to {principal}")
    raise IdentityRefused(
        f"public key {key_id} is already registered to someone else ({row.principal}); "
        "a key belongs to one principal"
    )


def _refuse_other_kind(connection: Connection, principal: str, kind: PrincipalKind) -> None:
    row = connection.execute(
        sa.select(identity_keys.c.principal_kind).where(identity_keys.c.principal == principal)
    ).first()
    if row is not None and row.principal_kind != kind.value:
        raise IdentityRefused(
            f"{principal} already has keys as a {row.principal_kind}, not a {kind.value}"
        )


def _insert_key(connection: Connection, record: KeyRecord, now: datetime, seq: int) -> None:
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
        )
    )


def _set_revoked(connection: Connection, key_id: str, when: datetime, reason: str) -> None:
    connection.execute(
        sa.update(identity_keys)
        .where(identity_keys.c.key_id == key_id)
        .values(revoked_at=when, revoked_reason=reason)
    )


def _entry_body(change: _Change, *, seq: int, at: datetime, by: str, prev: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "type": "gatekeeper.identity-log-entry",
        "seq": seq,
        "at": _iso(at),
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


def _append(
    connection: Connection, change: _Change, signer: Ed25519PrivateKey, now: datetime
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


def _check_entry(
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
        or body.get("at") != _iso(entry.at)
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
        if key.certified_by != signer.key_id or not _certificate_ok(key, signer):
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


def decode_public_key(value: str) -> str:
    """``value`` as a registrable public key (base64 of 32 raw bytes), or a one-line refusal."""
    _key_id(value)
    return base64.b64encode(base64.b64decode(value, validate=True)).decode("ascii")


__all__ = [
    "GENESIS",
    "ROOT_PRINCIPAL",
    "IdentityLogEntry",
    "IdentityRefused",
    "IdentityRegistry",
    "LogAction",
    "UnknownKey",
    "decode_public_key",
    "private_key_id",
]

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
(:mod:`gatekeeper.identity.authority`), and the CLI opens one per command. The log's entries,
chaining and replay are in :mod:`gatekeeper.identity.log`; the key table's rows and the one-line
refusals of a change in :mod:`gatekeeper.identity.key_table`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from gatekeeper import signing
from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.tables import (
    identity_keys,
    identity_log,
    identity_sso_links,
    passkey_enrollments,
)
from gatekeeper.identity import key_table as kt
from gatekeeper.identity import log as ilog
from gatekeeper.identity.key_table import IdentityRefused, UnknownKey, decode_public_key
from gatekeeper.identity.keys import (
    KeyKind,
    KeyRecord,
    PendingPasskey,
    PrincipalKind,
    SsoLink,
    key_id_of,
    webauthn_key_id,
)
from gatekeeper.identity.log import (
    GENESIS,
    IdentityLogEntry,
    LogAction,
    LogChange,
    certificate_ok,
    certified,
    iso,
    private_key_id,
)
from gatekeeper.webauthn import load_public_key as load_passkey

log = structlog.get_logger(__name__)

#: Who the trust root is, as a principal.
ROOT_PRINCIPAL = "identity-root"


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
        return [kt.record(row) for row in rows]

    def root(self) -> KeyRecord | None:
        """The trust root (the key that certifies itself), if the registry has one."""
        with self._read("read the trust root") as connection:
            row = kt.root_row(connection)
        return kt.record(row) if row is not None else None

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
            row = kt.row_by_id(connection, current)
            if row is None:
                if not chain:
                    raise UnknownKey(f"key {key_id} is not registered")
                raise IdentityRefused(
                    f"key {chain[-1].key_id} is certified by {current}, which is not registered"
                )
            record = kt.record(row)
            if any(seen.key_id == record.key_id for seen in chain):
                raise IdentityRefused(f"the certificate chain of {key_id} loops")
            if chain and record.principal_kind is not PrincipalKind.ADMIN:
                raise IdentityRefused(
                    f"key {chain[-1].key_id} is certified by {record.key_id}, which is not an "
                    "admin key"
                )
            if chain and not certificate_ok(chain[-1], record):
                raise IdentityRefused(
                    f"the certificate of key {chain[-1].key_id} does not verify with "
                    f"{record.key_id}'s key"
                )
            chain.append(record)
            if record.certified_by == record.key_id:
                if not certificate_ok(record, record):
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
        admin = kt.admin_of(connection, admin_key, now)
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
        links = {(link.issuer, link.subject): link.person for link in self.sso_links()}
        return ilog.replay(self.log(), self.keys(), trust_root, links)

    # -- changing (each change signed by an admin key and logged) ----------------------------

    def init_root(
        self, private_key: Ed25519PrivateKey, *, principal: str = ROOT_PRINCIPAL
    ) -> KeyRecord:
        """Register ``private_key``'s public half as the installation's trust root.

        The root is an admin key that certifies itself; the log's first entry records it.

        Raises:
            IdentityRefused: the registry already has a trust root.
        """
        principal = kt.principal(principal)
        public = signing.public_key_b64(private_key)
        key_id = key_id_of(public)
        now = self._clock()
        with self._write("initialise the trust root") as connection:
            existing = kt.root_row(connection)
            if existing is not None:
                raise IdentityRefused(
                    f"the registry already has a trust root ({existing.key_id}); "
                    "an installation has one root"
                )
            if kt.row_by_public_key(connection, public) is not None:
                raise IdentityRefused(f"public key {key_id} is already registered")
            record = certified(
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
            seq = ilog.append(
                connection, LogChange(LogAction.INIT_ROOT, key_id, key=record), private_key, now
            )
            kt.insert_key(connection, record, now, seq)
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
        principal = kt.principal(principal)
        kind = kt.principal_kind(principal_kind)
        key_id = kt.key_id(public_key)
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
            kt.refuse_duplicate(connection, public_key, key_id, principal)
            kt.refuse_other_kind(connection, principal, kind)
            record = certified(
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
            seq = ilog.append(
                connection, LogChange(LogAction.REGISTER, key_id, key=record), admin_key, now
            )
            kt.insert_key(connection, record, now, seq)
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
        reason = kt.reason(reason)
        now = self._clock()
        when = (at or now).astimezone(UTC)
        with self._write(f"revoke key {key_id}") as connection:
            self._admin(connection, admin_key, now)
            target = kt.target(connection, key_id)
            kt.refuse_revocation(target, when)
            ilog.append(
                connection,
                LogChange(
                    LogAction.REVOKE,
                    key_id,
                    revoke={"key_id": key_id, "at": iso(when), "reason": reason},
                ),
                admin_key,
                now,
            )
            kt.set_revoked(connection, key_id, when, reason)
            return kt.record(kt.row_by_id(connection, key_id))

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
        new_id = kt.key_id(public_key)
        if grace < timedelta(0):
            raise IdentityRefused("the grace period cannot be negative")
        now = self._clock()
        retire = now + grace
        if valid_until is not None and valid_until.astimezone(UTC) <= now:
            raise IdentityRefused(f"valid until {valid_until:%Y-%m-%d %H:%M} UTC is not after now")
        with self._write(f"rotate key {key_id}") as connection:
            admin = self._admin(connection, admin_key, now)
            old = kt.target(connection, key_id)
            if old.kind is KeyKind.WEBAUTHN:
                raise IdentityRefused(
                    f"key {key_id} of {old.principal} is a passkey: enroll a new one in the "
                    "console and revoke this one"
                )
            why = old.why_not_valid_at(now)
            if why is not None:
                raise IdentityRefused(f"{why}; register a new key instead of rotating it")
            kt.refuse_revocation(old, retire)
            kt.refuse_duplicate(connection, public_key, new_id, old.principal)
            record = certified(
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
            seq = ilog.append(
                connection,
                LogChange(
                    LogAction.ROTATE,
                    new_id,
                    key=record,
                    revoke={"key_id": key_id, "at": iso(retire), "reason": reason},
                ),
                admin_key,
                now,
            )
            kt.insert_key(connection, record, now, seq)
            kt.set_revoked(connection, key_id, retire, reason)
        return record

    # -- passkeys (requested by the console, approved by an identity admin) -------------------

    def enroll_passkey(
        self,
        person: str,
        *,
        credential_id: str,
        public_key: str,
        rp_id: str,
        origin: str,
        label: str = "",
    ) -> PendingPasskey:
        """Record ``person``'s request to register a passkey (no admin signature: a request).
        It counts for nothing until an identity admin approves it (:meth:`approve_passkey`).

        Raises:
            IdentityRefused: a malformed credential, public key, relying party or origin; the
                passkey is registered or already waits; ``person`` has too many waiting.
        """
        person = kt.principal(person)
        try:
            load_passkey(public_key)
            key_id = webauthn_key_id(public_key)
        except ValueError as err:
            raise IdentityRefused(f"passkey: {err}") from None
        now = self._clock()
        try:
            enrollment = PendingPasskey(
                enrollment_id="pk-" + secrets.token_hex(6),
                person=person,
                key_id=key_id,
                credential_id=credential_id,
                public_key=public_key,
                rp_id=rp_id,
                origin=origin,
                label=label,
                requested_at=now,
            )
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise IdentityRefused(f"passkey enrollment: {where}: {first['msg']}") from None
        with self._write(f"enroll a passkey for {person}") as connection:
            if kt.row_by_public_key(connection, public_key) is not None:
                raise IdentityRefused(f"passkey {key_id} is already registered")
            waiting = [
                row
                for row in connection.execute(
                    sa.select(passkey_enrollments).where(passkey_enrollments.c.state == "pending")
                ).all()
                if row.person == person or row.key_id == key_id
            ]
            if any(row.key_id == key_id for row in waiting):
                raise IdentityRefused(f"passkey {key_id} already waits for an identity admin")
            if len(waiting) >= MAX_PENDING_PASSKEYS:
                raise IdentityRefused(
                    f"{person} has {len(waiting)} passkeys waiting for an identity admin; "
                    "ask them to approve or reject those first"
                )
            connection.execute(
                sa.insert(passkey_enrollments).values(
                    **enrollment.model_dump(exclude={"state", "decided_at", "decided_by"}),
                    state="pending",
                )
            )
        return enrollment

    def pending_passkeys(self, person: str | None = None) -> list[PendingPasskey]:
        """Passkey enrollments waiting for an admin (of ``person``), oldest first."""
        return [e for e in self.passkey_enrollments(person) if e.state == "pending"]

    def passkey_enrollments(self, person: str | None = None) -> list[PendingPasskey]:
        """Every passkey enrollment (pending, approved, rejected), oldest first."""
        query = sa.select(passkey_enrollments).order_by(passkey_enrollments.c.requested_at)
        if person is not None:
            query = query.where(passkey_enrollments.c.person == person)
        with self._read("list passkey enrollments") as connection:
            rows = connection.execute(query).all()
        return [_enrollment(row) for row in rows]

    def approve_passkey(
        self,
        enrollment_id: str,
        admin_key: Ed25519PrivateKey,
        *,
        valid_until: datetime | None = None,
    ) -> KeyRecord:
        """Register the enrolled passkey as a ``webauthn`` key of its person, certified by
        ``admin_key`` and logged (``approve_passkey``).

        Raises:
            IdentityRefused: not a pending enrollment; ``admin_key`` is not a valid admin key;
                the passkey is registered already; the person has keys of another kind.
        """
        now = self._clock()
        end = valid_until.astimezone(UTC) if valid_until is not None else None
        if end is not None and end <= now:
            raise IdentityRefused(f"valid until {end:%Y-%m-%d %H:%M} UTC is not after now")
        with self._write(f"approve passkey enrollment {enrollment_id}") as connection:
            admin = self._admin(connection, admin_key, now)
            enrollment = _pending(connection, enrollment_id)
            kt.refuse_duplicate(
                connection, enrollment.public_key, enrollment.key_id, enrollment.person
            )
            kt.refuse_other_kind(connection, enrollment.person, PrincipalKind.PERSON)
            record = certified(
                KeyRecord(
                    key_id=enrollment.key_id,
                    principal=enrollment.person,
                    principal_kind=PrincipalKind.PERSON,
                    kind=KeyKind.WEBAUTHN,
                    public_key=enrollment.public_key,
                    valid_from=now,
                    valid_until=end,
                    certified_by=admin.key_id,
                    certificate="",
                    credential_id=enrollment.credential_id,
                    rp_id=enrollment.rp_id,
                    origin=enrollment.origin,
                ),
                admin_key,
            )
            seq = ilog.append(
                connection,
                LogChange(
                    LogAction.APPROVE_PASSKEY,
                    record.key_id,
                    key=record,
                    passkey={
                        "enrollment_id": enrollment.enrollment_id,
                        "person": enrollment.person,
                        "requested_at": iso(enrollment.requested_at),
                    },
                ),
                admin_key,
                now,
            )
            kt.insert_key(connection, record, now, seq)
            _decide(connection, enrollment_id, "approved", now, admin.key_id, "")
        return record

    def reject_passkey(self, enrollment_id: str, admin_key: Ed25519PrivateKey, reason: str) -> None:
        """Refuse a pending enrollment (logged ``reject_passkey``, signed by ``admin_key``).

        Raises:
            IdentityRefused: not a pending enrollment; not a valid admin key; no reason.
        """
        reason = kt.reason(reason)
        now = self._clock()
        with self._write(f"reject passkey enrollment {enrollment_id}") as connection:
            admin = self._admin(connection, admin_key, now)
            enrollment = _pending(connection, enrollment_id)
            ilog.append(
                connection,
                LogChange(
                    LogAction.REJECT_PASSKEY,
                    enrollment.key_id,
                    passkey={
                        "enrollment_id": enrollment.enrollment_id,
                        "person": enrollment.person,
                        "reason": reason,
                    },
                ),
                admin_key,
                now,
            )
            _decide(connection, enrollment_id, "rejected", now, admin.key_id, reason)

    def passkeys(self, person: str) -> list[KeyRecord]:
        """``person``'s passkeys that are valid now (approved, not revoked or expired)."""
        return [r for r in self.valid_keys(person) if r.kind is KeyKind.WEBAUTHN]

    # -- single sign-on links (issuer + subject -> person) ---------------------------------

    def link_sso(
        self,
        person: str,
        *,
        issuer: str,
        subject: str,
        email: str | None = None,
        admin_key: Ed25519PrivateKey,
    ) -> SsoLink:
        """Link the OIDC identity (``issuer``, ``subject``) to ``person`` (logged ``link_sso``,
        signed by ``admin_key``). An identity is linked to one person at a time.

        Raises:
            IdentityRefused: not a valid admin key; a malformed issuer, subject or e-mail; the
                identity is linked already.
        """
        person = kt.principal(person)
        now = self._clock()
        with self._write(f"link a single sign-on identity to {person}") as connection:
            admin = self._admin(connection, admin_key, now)
            try:
                link = SsoLink(
                    person=person,
                    issuer=issuer,
                    subject=subject,
                    email=email,
                    linked_at=now,
                    linked_by=admin.key_id,
                )
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise IdentityRefused(f"single sign-on link: {where}: {first['msg']}") from None
            existing = _sso_row(connection, link.issuer, link.subject)
            if existing is not None:
                whose = "them" if existing.person == person else existing.person
                raise IdentityRefused(
                    f"{link.issuer} {link.subject} is already linked to {whose}"
                    + ("" if existing.person == person else "; unlink it first")
                )
            sso = {"person": person, "issuer": link.issuer, "subject": link.subject}
            if link.email is not None:
                sso["email"] = link.email
            seq = ilog.append(
                connection, LogChange(LogAction.LINK_SSO, "", sso=sso), admin_key, now
            )
            connection.execute(
                sa.insert(identity_sso_links).values(**link.model_dump(), log_seq=seq)
            )
        return link

    def unlink_sso(
        self, person: str, *, issuer: str, subject: str, admin_key: Ed25519PrivateKey
    ) -> None:
        """Remove the link of (``issuer``, ``subject``) to ``person`` (logged ``unlink_sso``).

        Raises:
            IdentityRefused: not a valid admin key; the identity is not linked to ``person``.
        """
        person = kt.principal(person)
        now = self._clock()
        with self._write(f"unlink a single sign-on identity from {person}") as connection:
            self._admin(connection, admin_key, now)
            existing = _sso_row(connection, issuer, subject)
            if existing is None or existing.person != person:
                raise IdentityRefused(f"{issuer} {subject} is not linked to {person}")
            ilog.append(
                connection,
                LogChange(
                    LogAction.UNLINK_SSO,
                    "",
                    sso={"person": person, "issuer": issuer, "subject": subject},
                ),
                admin_key,
                now,
            )
            connection.execute(
                sa.delete(identity_sso_links).where(
                    identity_sso_links.c.issuer == issuer,
                    identity_sso_links.c.subject == subject,
                )
            )

    def sso_person(self, issuer: str, subject: str) -> str | None:
        """The person the OIDC identity (``issuer``, ``subject``) is linked to, or ``None``."""
        with self._read("read a single sign-on link") as connection:
            row = _sso_row(connection, issuer, subject)
        return str(row.person) if row is not None else None

    def sso_link_entries(self, issuer: str, subject: str) -> list[IdentityLogEntry]:
        """The identity log entries that linked or unlinked (``issuer``, ``subject``), oldest
        first: what a dossier carries to prove a gateway-attested identity was linked."""
        return [
            entry
            for entry in self.log()
            if entry.action in (LogAction.LINK_SSO, LogAction.UNLINK_SSO)
            and entry.body.get("sso", {}).get("issuer") == issuer
            and entry.body.get("sso", {}).get("subject") == subject
        ]

    def sso_links(self, person: str | None = None) -> list[SsoLink]:
        """The single sign-on links (of ``person``), by person then issuer and subject."""
        query = sa.select(identity_sso_links).order_by(
            identity_sso_links.c.person, identity_sso_links.c.issuer, identity_sso_links.c.subject
        )
        if person is not None:
            query = query.where(identity_sso_links.c.person == person)
        with self._read("list single sign-on links") as connection:
            rows = connection.execute(query).all()
        return [
            SsoLink(
                person=row.person,
                issuer=row.issuer,
                subject=row.subject,
                email=row.email,
                linked_at=row.linked_at,
                linked_by=row.linked_by,
            )
            for row in rows
        ]


#: How many passkeys one person may have waiting for an admin (a console cannot flood them).
MAX_PENDING_PASSKEYS = 5


def _enrollment(row: Any) -> PendingPasskey:
    return PendingPasskey(
        enrollment_id=row.enrollment_id,
        person=row.person,
        key_id=row.key_id,
        credential_id=row.credential_id,
        public_key=row.public_key,
        rp_id=row.rp_id,
        origin=row.origin,
        label=row.label,
        requested_at=row.requested_at,
        state=row.state,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        reason=row.reason,
    )


def _pending(connection: Connection, enrollment_id: str) -> PendingPasskey:
    row = connection.execute(
        sa.select(passkey_enrollments).where(passkey_enrollments.c.enrollment_id == enrollment_id)
    ).first()
    if row is None:
        raise UnknownKey(
            f"no passkey enrollment {enrollment_id} (see `gatekeeper keys passkey list --pending`)"
        )
    enrollment = _enrollment(row)
    if enrollment.state != "pending":
        raise IdentityRefused(
            f"passkey enrollment {enrollment_id} of {enrollment.person} was already "
            f"{enrollment.state}"
        )
    return enrollment


def _decide(
    connection: Connection, enrollment_id: str, state: str, at: datetime, by: str, reason: str
) -> None:
    connection.execute(
        sa.update(passkey_enrollments)
        .where(passkey_enrollments.c.enrollment_id == enrollment_id)
        .values(state=state, decided_at=at, decided_by=by, reason=reason)
    )


def _sso_row(connection: Connection, issuer: str, subject: str) -> Any:
    return connection.execute(
        sa.select(identity_sso_links).where(
            identity_sso_links.c.issuer == issuer, identity_sso_links.c.subject == subject
        )
    ).first()


# -- helpers -------------------------------------------------------------------------------------


__all__ = [
    "GENESIS",
    "MAX_PENDING_PASSKEYS",
    "ROOT_PRINCIPAL",
    "IdentityLogEntry",
    "IdentityRefused",
    "IdentityRegistry",
    "LogAction",
    "UnknownKey",
    "decode_public_key",
    "private_key_id",
]

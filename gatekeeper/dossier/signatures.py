"""What ``audit verify`` re-checks beyond the hash chain: signatures, signed heads, anchors.

A hash chain alone proves nothing against someone who rewrites an event and recomputes every
hash after it. What they cannot recompute are signatures:

- every **attestation** (an accepted signed request's ``details["attestation"]``): the statement's
  canonical JSON verifies with the key it names, taken from the dossier's key set; the key's
  principal is the event's actor and was valid when the statement was signed. A passkey's
  attestation (``kind`` webauthn) is re-checked as the worker did (:mod:`gatekeeper.webauthn`:
  challenge = sha256 of the statement, origin, relying party, user verified, ECDSA); a gateway's
  (``kind`` gateway) verifies with a key registered as a gateway, and the dossier's ``sso_links``
  (identity log entries an admin signed) must show the attested identity linked to the actor
  when it signed;
- every **signed head** (``audit_head_signed``): a worker's key signed that the chain's event at
  ``seq`` has hash ``hash`` (and lists a prefix of each event's hash since the previous head, so
  a re-hashed chain is caught at the first event that differs);
- every key used chains, certificate by certificate, to the **pinned trust root**;
- every **anchor** (the heads written outside the workflow, read from the anchor table or from
  the dossier): a chain that disagrees with one is a fork (an edit, or a Temporal reset).

Pure functions over plain JSON data; no I/O. :class:`AttestationCheck` runs the same check of an
attestation with keys and links read from the identity registry instead of a dossier (the
console's "verifies" mark).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.identity.heads import HEAD_ACTION, Anchor, SignedHead, verify_head
from gatekeeper.identity.keys import (
    KeyKind,
    KeyRecord,
    PrincipalKind,
    certificate_bytes,
    key_id_for,
)
from gatekeeper.identity.log import IdentityLogEntry, LogAction, iso
from gatekeeper.ids import ORDER_ACTOR_PREFIX
from gatekeeper.models.audit import AuditEvent
from gatekeeper.signing import verify as verify_bytes
from gatekeeper.statements import signature_label
from gatekeeper.webauthn import assertion_problem

#: Actions whose event ends a release.
TERMINAL_ACTIONS = frozenset({"release_launched", "release_rejected", "release_withdrawn"})
_MAX_CHAIN = 16


class Problem(Exception):
    """A check that failed: the event it concerns (``None``: the dossier as a whole)."""

    def __init__(self, index: int | None, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class SignatureReport:
    """What the signature checks covered, for the one-line verdict."""

    attestations: int
    heads: int
    #: The last event a verified signed head covers (-1: none).
    signed_through: int
    anchors: int
    anchors_from: str
    #: Events after the last signed head that nothing signed yet (a running release).
    unsigned_tail: tuple[int, int] | None = None
    #: How many attestations of each kind ("CLI key", "passkey", "gateway"), in order met.
    kinds: tuple[tuple[str, int], ...] = ()


def check_signatures(
    events: list[AuditEvent],
    dossier: dict[str, Any],
    *,
    trust_root: str | None,
    anchors: Iterable[Anchor] | None,
    anchors_from: str,
    unsigned_ok: bool = False,
    extra_keys: Iterable[KeyRecord] = (),
) -> SignatureReport:
    """Check every attestation, signed head and anchor of a dossier's (hash-checked) chain.

    Raises:
        Problem: the first failing check, by event; one about the dossier as a whole otherwise.
    """
    keys = _keys(dossier.get("keys"))
    for record in extra_keys:
        keys.setdefault(record.key_id, record)
    trust = _Trust(keys, trust_root, _links(dossier.get("sso_links")))
    problems: list[Problem] = []
    heads: list[tuple[int, SignedHead]] = []
    attestations = 0
    kinds: Counter[str] = Counter()
    for index, event in enumerate(events):
        try:
            if event.action == HEAD_ACTION:
                heads.append((index, _check_head(events, index, event, trust)))
            elif "attestation" in event.details:
                kinds[_check_attestation(index, event, trust)] += 1
                attestations += 1
        except Problem as problem:
            problems.append(problem)
    run_ids = {h.head.first_run_id for _, h in heads}
    if anchors is None:
        anchors = _anchors(dossier.get("anchors"))
    anchors = [a for a in anchors if a.head.release_id == (events[0].release_id if events else "")]
    chained = {h.head.seq for _, h in heads}
    for anchor in anchors:
        try:
            _check_anchor(events, dossier, anchor, trust)
        except Problem as problem:
            problems.append(problem)
            continue
        # A release's heads live in the anchor table: one this chain agrees with is a signed head
        # of it (checked above: a worker's key, valid, chained to the root).
        if _first_difference(events, anchor) is None and anchor.head.seq not in chained:
            chained.add(anchor.head.seq)
            heads.append((anchor.head.seq, anchor))
            run_ids.add(anchor.head.first_run_id)
    if len(run_ids) > 1:
        problems.append(Problem(None, "altered: the signed heads name different first runs"))
    signed_through = max((h.head.seq for _, h in heads), default=-1)
    terminal = next((i for i, e in enumerate(events) if e.action in TERMINAL_ACTIONS), None)
    tail: tuple[int, int] | None = None
    last = len(events) - 1
    covered = signed_through
    # Signed heads themselves (and events after a release's end that only record them) are
    # outside what a head covers.
    while covered < last and events[covered + 1].action == HEAD_ACTION:
        covered += 1
    if covered < last:
        if not problems and terminal is not None and terminal > signed_through and not unsigned_ok:
            problems.append(
                Problem(
                    signed_through + 1,
                    f"not signed: the release ended at event #{terminal} but no head a worker "
                    f"signed covers events #{signed_through + 1}–#{last}"
                    + (
                        " (a release from before signed heads? --unsigned checks the chain alone)"
                        if signed_through < 0
                        else ""
                    ),
                )
            )
        tail = (covered + 1, last)
    if problems:
        raise min(problems, key=lambda p: (p.index is None, p.index or 0))
    return SignatureReport(
        attestations=attestations,
        heads=len(heads),
        signed_through=signed_through,
        anchors=len(anchors),
        anchors_from=anchors_from,
        unsigned_tail=tail,
        kinds=tuple(kinds.items()),
    )


# --- keys and the trust root ---------------------------------------------------------------------


def _keys(raw: Any) -> dict[str, KeyRecord]:
    keys: dict[str, KeyRecord] = {}
    for number, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            record = KeyRecord.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            raise Problem(
                None, f"altered: key #{number} of the dossier is not a key record ({where})"
            ) from err
        try:
            derived = key_id_for(record.kind, record.public_key)
        except ValueError as err:
            raise Problem(None, f"altered: key {record.key_id}: {err}") from err
        if derived != record.key_id:
            raise Problem(None, f"altered: key {record.key_id} is not the id of its public key")
        if record.key_id in keys and keys[record.key_id] != record:
            raise Problem(None, f"altered: the dossier holds two different records of {derived}")
        keys[record.key_id] = record
    return keys


class _Keys:
    """Where the checks of an attestation find keys and single sign-on links: the dossier's
    (:class:`_Trust`) or the identity registry's (:class:`_Directory`)."""

    #: Named in a refusal ("the dossier does not show ...").
    source = "the dossier"

    def key(self, key_id: Any, what: str) -> KeyRecord:
        """The trusted record of ``key_id``, else ``_Reason``."""
        raise NotImplementedError

    def links_of(self, issuer: str, subject: str) -> list[IdentityLogEntry]:
        """The identity log entries that linked or unlinked (``issuer``, ``subject``)."""
        raise NotImplementedError


class _Trust(_Keys):
    """Which keys chain to the pinned root (each answer computed once)."""

    def __init__(
        self,
        keys: dict[str, KeyRecord],
        root: str | None,
        links: list[IdentityLogEntry] | None = None,
    ) -> None:
        self.keys = keys
        self.root = root
        self.links = links or []
        self._known: dict[str, str | None] = {}

    def links_of(self, issuer: str, subject: str) -> list[IdentityLogEntry]:
        return self.links

    def key(self, key_id: Any, what: str) -> KeyRecord:
        """The record of ``key_id`` if it chains to the trust root, else a reason."""
        if not isinstance(key_id, str):
            raise _Reason(f"{what} names no key")
        record = self.keys.get(key_id)
        if record is None:
            raise _Reason(f"{what} is by key {key_id}, which the dossier does not carry")
        if key_id not in self._known:
            self._known[key_id] = self._why_untrusted(record)
        why = self._known[key_id]
        if why is not None:
            raise _Reason(why)
        return record

    def _why_untrusted(self, record: KeyRecord) -> str | None:
        if self.root is None:
            return "no trust root is pinned: pass --trust-root KEY_ID or set [identity] trust_root"
        current = record
        for _ in range(_MAX_CHAIN):
            if current.certified_by == current.key_id:
                if not verify_bytes(
                    current.public_key, certificate_bytes(current), current.certificate
                ):
                    return f"the self-certificate of root {current.key_id} does not verify"
                if current.key_id != self.root:
                    return (
                        f"key {record.key_id} of {record.principal} chains to root "
                        f"{current.key_id}, not to the pinned trust root {self.root}"
                    )
                return None
            certifier = self.keys.get(current.certified_by)
            if certifier is None:
                return (
                    f"key {current.key_id} is certified by {current.certified_by}, which the "
                    "dossier does not carry"
                )
            if certifier.principal_kind != PrincipalKind.ADMIN:
                return (
                    f"key {current.key_id} is certified by {certifier.key_id} of "
                    f"{certifier.principal}, which is not an identity admin"
                )
            if not verify_bytes(
                certifier.public_key, certificate_bytes(current), current.certificate
            ):
                return f"the certificate of key {current.key_id} does not verify"
            current = certifier
        return f"the certificate chain of key {record.key_id} is too long or loops"


class _Reason(Exception):
    pass


class _Directory(_Keys):
    """The identity registry as the source of keys and links (it returns only keys whose
    certificates lead to its trust root); each answer read once."""

    source = "the identity registry"

    def __init__(
        self,
        key: Callable[[str], KeyRecord | None],
        links: Callable[[str, str], Sequence[IdentityLogEntry]],
    ) -> None:
        self._key = key
        self._links = links
        self._keys: dict[str, KeyRecord | None] = {}
        self._found: dict[tuple[str, str], list[IdentityLogEntry]] = {}

    def key(self, key_id: Any, what: str) -> KeyRecord:
        if not isinstance(key_id, str):
            raise _Reason(f"{what} names no key")
        if key_id not in self._keys:
            self._keys[key_id] = self._key(key_id)
        record = self._keys[key_id]
        if record is None:
            raise _Reason(f"{what} is by key {key_id}, which is not registered")
        return record

    def links_of(self, issuer: str, subject: str) -> list[IdentityLogEntry]:
        if (issuer, subject) not in self._found:
            self._found[(issuer, subject)] = list(self._links(issuer, subject))
        return self._found[(issuer, subject)]


class AttestationCheck:
    """``audit verify``'s check of each attestation, against the identity registry instead of a
    dossier's keys and links (the release page's "verifies" mark): the key is registered (its
    certificates lead to the registry's root) and was valid when the statement was signed; a CLI
    key or passkey is the actor's (a passkey's assertion re-checked by
    :func:`gatekeeper.webauthn.assertion_problem`); a gateway's key is a registered gateway's and
    the signed identity log shows the attested single sign-on identity linked to the actor when
    the gateway signed. One instance remembers the keys and links it read.

    Args:
        key: the registry's ``key`` (a key by id, revoked or not; ``None`` if unknown).
        sso_link_entries: the registry's ``sso_link_entries`` (issuer, subject).
    """

    def __init__(
        self,
        key: Callable[[str], KeyRecord | None],
        sso_link_entries: Callable[[str, str], Sequence[IdentityLogEntry]],
    ) -> None:
        self._directory = _Directory(key, sso_link_entries)

    def problem(self, event: AuditEvent) -> str | None:
        """Why the attestation ``event`` records does not verify, in one line; ``None`` if it
        does."""
        try:
            _attestation_kind(event, self._directory)
        except _Reason as why:
            return str(why)
        return None


# --- events -----------------------------------------------------------------------------------------


def _label(index: int, event: AuditEvent) -> str:
    at = event.model_dump(mode="json")["at"]  # as the file spells it
    return f"event #{index} ({event.action} at {at})"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_attestation(index: int, event: AuditEvent, trust: _Trust) -> str:
    """Check one attestation; how its kind is named (``signature_label``)."""
    try:
        return _attestation_kind(event, trust)
    except _Reason as why:
        raise Problem(index, f"altered: {_label(index, event)}: {why}") from None


def _attestation_kind(event: AuditEvent, trust: _Keys) -> str:
    """The checks of one attestation against the keys and links of ``trust``: how its kind is
    named, or ``_Reason`` (why it does not verify)."""
    attestation = event.details.get("attestation")
    statement = attestation.get("statement") if isinstance(attestation, dict) else None
    signature = attestation.get("signature") if isinstance(attestation, dict) else None
    if not isinstance(statement, dict) or not isinstance(signature, str):
        raise _Reason("its attestation is not a signed statement")
    assert isinstance(attestation, dict)
    kind = attestation.get("kind", "key")
    if kind not in ("key", "webauthn", "gateway"):
        raise _Reason("its attestation is of an unknown kind")
    if (kind == "gateway") != ("sso" in statement):
        raise _Reason("only a gateway's statement attests a single sign-on")
    key = trust.key(statement.get("key_id"), "its attestation")
    if statement.get("actor") != event.actor:
        raise _Reason(
            f"the event names {event.actor}, the signed statement {statement.get('actor')}"
        )
    signed_at = _parse_time(statement.get("signed_at"))
    if signed_at is None:
        raise _Reason("its statement has no time of signing")
    if kind == "gateway":
        _check_gateway(event, key, statement, signed_at, trust)
    elif event.actor.startswith(ORDER_ACTOR_PREFIX):
        # An access order's request, relayed to the release by a worker, is signed by that
        # worker's key (the order's own update was signed by its person, in the order's chain).
        if key.principal_kind != PrincipalKind.WORKER or kind != "key":
            raise _Reason(f"{event.actor}'s request is signed by {key.principal}, not by a worker")
    elif key.principal != event.actor or key.principal_kind != PrincipalKind.PERSON:
        raise _Reason(f"signed with a key of {key.principal}, not of {event.actor}")
    elif (key.kind is KeyKind.WEBAUTHN) != (kind == "webauthn"):
        raise _Reason(f"signed as a {signature_label(kind)} with key {key.key_id}")
    invalid = key.why_not_valid_at(signed_at)
    if invalid is not None:
        raise _Reason(invalid)
    if kind == "webauthn":
        proof = attestation.get("webauthn")
        if not isinstance(proof, dict) or not all(
            isinstance(proof.get(name), str) for name in ("authenticator_data", "client_data_json")
        ):
            raise _Reason("its passkey assertion is missing")
        problem = assertion_problem(
            key,
            challenge=hashlib.sha256(canonical_json(statement)).digest(),
            authenticator_data=proof["authenticator_data"],
            client_data_json=proof["client_data_json"],
            signature_b64=signature,
        )
        if problem is not None:
            raise _Reason(problem)
        return signature_label(kind)
    if not verify_bytes(key.public_key, canonical_json(statement), signature):
        raise _Reason(f"the signature of {event.actor} does not verify")
    return signature_label(kind, statement.get("sso"))


def _check_gateway(
    event: AuditEvent,
    key: KeyRecord,
    statement: dict[str, Any],
    signed_at: datetime,
    trust: _Keys,
) -> None:
    """A gateway's attestation: by a registered gateway, of an identity an admin had linked to
    the actor when it was signed (the dossier's ``sso_links``)."""
    if key.principal_kind != PrincipalKind.GATEWAY or key.kind is not KeyKind.ED25519:
        raise _Reason(f"attested by {key.principal}, which is not a registered gateway")
    sso = statement.get("sso")
    issuer = sso.get("issuer") if isinstance(sso, dict) else None
    subject = sso.get("subject") if isinstance(sso, dict) else None
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise _Reason("its single sign-on claims are malformed")
    linked: str | None = None
    for entry in sorted(trust.links_of(issuer, subject), key=lambda e: e.seq):
        body = entry.body.get("sso")
        if not isinstance(body, dict) or (body.get("issuer"), body.get("subject")) != (
            issuer,
            subject,
        ):
            continue
        why = _link_problem(entry, trust)
        if why is not None:
            raise _Reason(f"the link of {issuer} {subject}: {why}")
        if entry.at > signed_at:
            break
        linked = body.get("person") if entry.action == LogAction.LINK_SSO else None
    if linked != event.actor:
        raise _Reason(
            f"{trust.source} does not show {issuer} {subject} linked to {event.actor} when the "
            "gateway signed" + (f" (it was linked to {linked})" if linked else "")
        )


def _link_problem(entry: IdentityLogEntry, trust: _Keys) -> str | None:
    """``None`` when ``entry`` is an identity log entry an admin trusted then signed."""
    body = entry.body
    if entry.action not in (LogAction.LINK_SSO, LogAction.UNLINK_SSO):
        return f"entry {entry.seq} is a {entry.action}, not a link"
    if (
        sha256_hex(canonical_json(body)) != entry.hash
        or body.get("action") != entry.action
        or body.get("by") != entry.by_key_id
        or body.get("at") != iso(entry.at)
    ):
        return f"identity log entry {entry.seq} was edited"
    try:
        admin = trust.key(entry.by_key_id, f"identity log entry {entry.seq}")
    except _Reason as why:
        return str(why)
    if admin.principal_kind != PrincipalKind.ADMIN:
        return f"identity log entry {entry.seq} is signed by {admin.principal}, not an admin"
    invalid = admin.why_not_valid_at(entry.at)
    if invalid is not None:
        return invalid
    if not verify_bytes(admin.public_key, canonical_json(body), entry.signature):
        return f"the admin's signature on identity log entry {entry.seq} does not verify"
    return None


def _links(raw: Any) -> list[IdentityLogEntry]:
    found: list[IdentityLogEntry] = []
    for number, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            found.append(IdentityLogEntry.model_validate(item))
        except ValidationError as err:
            raise Problem(
                None, f"altered: single sign-on link #{number} of the dossier is malformed"
            ) from err
    return found


def _check_head(
    events: list[AuditEvent], index: int, event: AuditEvent, trust: _Trust
) -> SignedHead:
    label = _label(index, event)
    try:
        signed = SignedHead.model_validate(event.details)
    except ValidationError as err:
        raise Problem(index, f"altered: {label}: not a signed head") from err
    head = signed.head
    try:
        key = trust.key(head.key_id, "the head")
    except _Reason as why:
        raise Problem(index, f"altered: {label}: {why}") from None
    if key.principal_kind != PrincipalKind.WORKER:
        raise Problem(index, f"altered: {label}: signed by {key.principal}, not by a worker")
    invalid = key.why_not_valid_at(head.signed_time())
    if invalid is not None:
        raise Problem(index, f"altered: {label}: {invalid}")
    if not verify_head(key.public_key, signed):
        raise Problem(index, f"altered: {label}: the worker's signature does not verify")
    if head.release_id != event.release_id:
        raise Problem(index, f"altered: {label}: the head is of release {head.release_id}")
    bad = _first_difference(events[:index], signed)
    if bad is not None and bad < index:
        raise Problem(
            bad,
            f"altered: {_label(bad, events[bad])}: the head signed by the worker at "
            f"{head.signed_at} ({head.reason}) says event #{bad} was another",
        )
    if head.seq >= index:
        raise Problem(index, f"altered: {label}: the head is not of an earlier event")
    return signed


def _first_difference(events: list[AuditEvent], signed: SignedHead) -> int | None:
    """The first event at or before the head's ``seq`` that is not the one the head covers."""
    head = signed.head
    for offset, link in enumerate(head.links):
        seq = head.first + offset
        if seq >= len(events) or not events[seq].hash.startswith(link):
            return seq
    if head.seq >= len(events):
        return len(events)
    if events[head.seq].hash != head.hash:
        return head.seq
    return None


# --- anchors ----------------------------------------------------------------------------------------


def _anchors(raw: Any) -> list[Anchor]:
    found: list[Anchor] = []
    for number, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            found.append(Anchor.model_validate(item))
        except ValidationError as err:
            raise Problem(
                None, f"altered: anchor #{number} of the dossier is not an anchor"
            ) from err
    return found


def _check_anchor(
    events: list[AuditEvent], dossier: dict[str, Any], anchor: Anchor, trust: _Trust
) -> None:
    head = anchor.head
    try:
        key = trust.key(head.key_id, f"the head anchored at event {head.seq}")
    except _Reason as why:
        raise Problem(head.seq, f"fork at event {head.seq}: {why}") from None
    if key.principal_kind != PrincipalKind.WORKER or not verify_head(key.public_key, anchor):
        raise Problem(
            head.seq, f"fork at event {head.seq}: the anchored head's signature does not verify"
        )
    bad = _first_difference(events, anchor)
    if bad is None:
        return
    if bad >= len(events) and not _ended(events):
        exported = _parse_time(dossier.get("exported_at"))
        if exported is not None and head.signed_time() > exported:
            return  # signed after this export of a running release: says nothing about it
    ends = f" (the dossier ends at event {len(events) - 1})" if bad >= len(events) else ""
    raise Problem(
        bad,
        f"fork at event {bad}: anchored head {head.hash[:16]}… (event {head.seq}, {head.reason}) "
        f"signed at {head.signed_at} is not this dossier's{ends}",
    )


def _ended(events: list[AuditEvent]) -> bool:
    return any(e.action in TERMINAL_ACTIONS for e in events)

"""The release page's view model: what one release shows a signed-in person, computed once.

Built from what every other view reads (``Releases.status()`` through
:func:`gatekeeper.status_view.view`, and ``Releases.audit()``) plus the release's own policy (for
names and the forms, :mod:`gatekeeper.console.decisions`). Pure: no I/O besides the identity
registry it is given to re-check each decision's signature (:class:`SignatureChecks`).

Every text here is plain data: the template shows it through Jinja2's autoescaping, never as
markup (no ``|safe``, no Markdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from gatekeeper.canonical import canonical_json
from gatekeeper.console.decisions import Form, forms_for
from gatekeeper.dossier.signatures import AttestationCheck
from gatekeeper.identity.keys import KeyRecord
from gatekeeper.identity.log import IdentityLogEntry
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.partners import PartnerList
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import GrantSummary, HoldRecord, ReleaseStatus
from gatekeeper.signed_requests import gateway_problem, release_binding
from gatekeeper.statements import Binding, signature_label
from gatekeeper.status_view import Government, StatusView, view


@dataclass(frozen=True)
class StageNode:
    """One stage of the progress graph."""

    id: str
    title: str
    kind: str
    status: str
    current: bool
    started_at: datetime | None
    ended_at: datetime | None
    note: str


@dataclass(frozen=True)
class Someone:
    """A roster person the release awaits, by name."""

    id: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceRow:
    id: str
    kind: str
    title: str
    uri: str
    #: The URI when it is an http(s) link a browser may follow, else None (shown as text).
    link: str | None
    sha256: str
    authors: tuple[str, ...]
    check: str
    detail: str
    #: Who attested the authors of the item at its current digest ("" if nobody).
    attested: str = ""


@dataclass(frozen=True)
class SignatureState:
    """How a recorded request was signed, and whether its signature verifies now."""

    kind: str
    label: str
    key_id: str | None
    #: True: verifies with the registered key; False: does not (``why``); None: cannot be
    #: checked here (no key directory, or an unsigned or pre-registry decision).
    verified: bool | None
    why: str = ""
    #: Said with a signature that verifies (a gateway's identity unlinked since, say).
    note: str = ""


@dataclass(frozen=True)
class DecisionView:
    stage: str
    kind: str
    by: str
    role: str
    at: datetime
    comment: str
    valid: bool
    invalidated_reason: str
    signature: SignatureState


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: datetime
    actor: str
    action: str
    stage: str | None
    hash: str
    signature: SignatureState | None


@dataclass(frozen=True)
class PasskeyChoice:
    """One of the signed-in person's active passkeys, as the decision forms offer it."""

    key_id: str
    label: str
    #: When it became active (an identity admin approved it).
    registered: datetime


def passkey_choices(keys: Sequence[KeyRecord], labels: dict[str, str]) -> tuple[PasskeyChoice, ...]:
    """The passkeys ``keys`` (a person's active ones), newest first, with the labels given at
    registration (``labels``: by key id)."""
    return tuple(
        sorted(
            (PasskeyChoice(k.key_id, labels.get(k.key_id, ""), k.valid_from) for k in keys),
            key=lambda c: (c.registered, c.key_id),
            reverse=True,
        )
    )


@dataclass(frozen=True)
class ReleasePage:
    """Everything the release page shows."""

    v: StatusView
    status: ReleaseStatus
    policy_ref: str
    stages: tuple[StageNode, ...]
    awaited_people: tuple[Someone, ...]
    evidence: tuple[EvidenceRow, ...]
    artifact_uri: str
    artifact_sha256: str
    decisions: tuple[DecisionView, ...]
    holds: tuple[HoldRecord, ...]
    government: Government
    grants: GrantSummary
    partner_lists: tuple[PartnerList, ...]
    audit: tuple[AuditRow, ...]
    forms: tuple[Form, ...]
    binding: Binding
    #: The binding as the page embeds it (what a passkey signs: what the person saw).
    binding_json: str
    now: datetime
    #: The person's active passkeys, newest first (a form offers the choice when there are two
    #: or more; the newest is the default).
    passkeys: tuple[PasskeyChoice, ...] = ()

    def form(self, action: str) -> Form | None:
        return next((f for f in self.forms if f.action == action), None)

    @property
    def deadline(self) -> datetime | None:
        """What the countdown counts to: the wait's end (a gate's deadline, the window's end)."""
        return self.v.waiting.until if self.v.waiting else None


def safe_link(uri: str) -> str | None:
    """``uri`` when it is an absolute http(s) URL (never ``javascript:`` or ``data:``)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return uri
    return None


class Directory(Protocol):
    """What the page reads from the identity registry (an ``IdentityRegistry``) to re-check
    each decision's signature."""

    def key(self, key_id: str) -> KeyRecord | None: ...

    def sso_link_entries(self, issuer: str, subject: str) -> list[IdentityLogEntry]: ...

    def sso_person(self, issuer: str, subject: str) -> str | None: ...


class SignatureChecks:
    """The checks behind the page's "verifies" mark: ``audit verify``'s check of an attestation
    (:class:`gatekeeper.dossier.signatures.AttestationCheck`) against the identity registry, plus
    the worker's policy check of a gateway's attestation (the release's policy lists the action
    in ``gateway_attestation``: :func:`gatekeeper.signed_requests.gateway_problem`)."""

    def __init__(self, directory: Directory, policy: Policy) -> None:
        self.directory = directory
        self.attestations = AttestationCheck(directory.key, directory.sso_link_entries)
        self.gateway_actions = frozenset(str(a) for a in policy.gateway_attestation)
        self.policy_ref = f"{policy.policy_id}@{policy.version}"


def signature_state(event: AuditEvent | None, checks: SignatureChecks | None) -> SignatureState:
    """How the request recorded by ``event`` was signed, and whether it verifies now with the
    registered keys (``checks``; ``None``: not checked). The dossier's certificate chain to the
    pinned root, signed heads and anchors are what the verify button adds."""
    attestation = event.details.get("attestation") if event is not None else None
    if not isinstance(attestation, dict):
        return SignatureState("unsigned", "unsigned", None, None)
    kind = str(attestation.get("kind") or "key")
    statement = attestation.get("statement")
    statement = statement if isinstance(statement, dict) else {}
    key_id = statement.get("key_id") if isinstance(statement.get("key_id"), str) else None
    sso = statement.get("sso")
    label = signature_label(kind, sso)
    if checks is None or event is None:
        return SignatureState(kind, label, key_id, None)
    why: str | None = None
    if kind == "gateway":
        why = gateway_problem(
            str(statement.get("action", "")),
            event.actor,
            checks.gateway_actions,
            checks.policy_ref,
        )
    if why is None:
        why = checks.attestations.problem(event)
    if why is not None:
        return SignatureState(kind, label, key_id, False, why)
    return SignatureState(kind, label, key_id, True, note=_link_now(checks, event.actor, sso))


def _link_now(checks: SignatureChecks, actor: str, sso: Any) -> str:
    """For a gateway's attestation (which counts by the link in force when it was signed): a
    note when the identity is no longer linked to ``actor``."""
    if not isinstance(sso, dict):
        return ""
    issuer, subject = str(sso.get("issuer", "")), str(sso.get("subject", ""))
    now = checks.directory.sso_person(issuer, subject)
    if now == actor:
        return ""
    return f"{issuer} {subject} was linked to {actor} when signed; " + (
        f"it is linked to {now} now" if now else "it is not linked now"
    )


def _attested(status: ReleaseStatus, evidence_id: str, sha256: str) -> str:
    found = status.authorship.get(evidence_id)
    if found is None or found.sha256 != sha256:
        return ""
    return f"authors attested by {found.by}: {', '.join(found.authors)}"


def _decision_events(audit: Sequence[AuditEvent]) -> dict[tuple[str, str, str], AuditEvent]:
    """The audit event of each recorded gate decision, by (stage, person, time)."""
    found: dict[tuple[str, str, str], AuditEvent] = {}
    for event in audit:
        if event.action.startswith("decision_") and isinstance(event.details.get("at"), str):
            found[(event.stage or "", event.actor, _instant(event.details["at"]))] = event
    return found


def _instant(value: str | datetime) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.isoformat()


def page_model(
    status: ReleaseStatus,
    audit: Sequence[AuditEvent],
    policy: Policy,
    person: str,
    now: datetime,
    *,
    directory: Directory | None = None,
    gateway: bool = False,
    passkeys: tuple[PasskeyChoice, ...] = (),
) -> ReleasePage:
    """The release page of ``status`` as ``person`` sees it at ``now``."""
    v = view(status)
    stages = tuple(
        StageNode(
            id=s.id,
            title=s.title,
            kind=s.kind.value,
            status=s.status.value,
            current=s.id == status.stage and not status.terminal,
            started_at=s.started_at,
            ended_at=s.ended_at,
            note=s.note,
        )
        for s in status.stages
    )
    awaited: list[Someone] = []
    if v.waiting is not None:
        named = list(v.waiting.people) or [
            p.id for p in policy.roster if set(p.roles) & set(v.waiting.roles)
        ]
        for pid in named:
            found = policy.person(pid)
            awaited.append(
                Someone(pid, found.name if found else pid, tuple(found.roles) if found else ())
            )
    checks = {c.id: c for c in status.evidence_checks}
    evidence = tuple(
        EvidenceRow(
            id=e.id,
            kind=e.kind.value,
            title=e.title,
            uri=e.uri,
            link=safe_link(e.uri),
            sha256=e.sha256,
            authors=tuple(e.authors),
            check=checks[e.id].result if e.id in checks else "",
            detail=checks[e.id].detail if e.id in checks else "",
            attested=_attested(status, e.id, e.sha256),
        )
        for e in status.spec.evidence
    )
    events = _decision_events(audit)
    signatures = SignatureChecks(directory, policy) if directory is not None else None
    decisions = tuple(
        DecisionView(
            stage=row.stage,
            kind=row.kind,
            by=row.by,
            role=row.role,
            at=row.at,
            comment=row.comment,
            valid=row.valid,
            invalidated_reason=row.invalidated_reason,
            signature=signature_state(
                events.get((row.stage, row.person, _instant(row.at))), signatures
            ),
        )
        for row in v.decisions
    )
    rows = tuple(
        AuditRow(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            stage=e.stage,
            hash=e.hash,
            signature=signature_state(e, None) if "attestation" in e.details else None,
        )
        for e in audit
    )
    binding = release_binding(status)
    return ReleasePage(
        v=v,
        status=status,
        policy_ref=f"{status.policy_id}@{status.policy_version}",
        stages=stages,
        awaited_people=tuple(awaited),
        evidence=evidence,
        artifact_uri=status.spec.artifact.uri,
        artifact_sha256=status.spec.artifact.sha256,
        decisions=decisions,
        holds=tuple(status.holds),
        government=v.government,
        grants=status.grant_summary,
        partner_lists=tuple(status.partner_lists),
        audit=rows,
        forms=tuple(forms_for(policy, status, person, now, gateway=gateway)),
        binding=binding,
        binding_json=canonical_json(binding).decode("utf-8"),
        now=now,
        passkeys=passkeys,
    )

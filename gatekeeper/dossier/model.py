"""The release dossier as data: what happened, who decided, and the audit chain that proves it.

:func:`build_dossier` is pure: it takes what the workflow recorded (its input's policy snapshot,
its final or current status, its audit chain) and the outbox's delivery lines, and returns the
:class:`Dossier`. The JSON dossier is this model; Markdown and HTML are renderings of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from gatekeeper import signing
from gatekeeper.canonical import digest_of
from gatekeeper.identity.heads import HEAD_ACTION, Anchor, SignedHead
from gatekeeper.identity.keys import KeyRecord
from gatekeeper.identity.log import IdentityLogEntry
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.base import Model
from gatekeeper.models.messages import DecisionSignature
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.statements import signature_label

#: ``format`` of every JSON dossier this version writes (``audit verify`` recognises it).
DOSSIER_FORMAT = "gatekeeper.release-dossier/1"

#: ``signed request``: signed with a registered key (the worker checked it; the statement and
#: signature are in the decision's audit event, which ``audit verify`` checks again).
SignatureCheck = Literal[
    "verified", "invalid", "unsigned", "no key on the roster", "no policy", "signed request"
]
PolicyCheck = Literal["matches", "does not match", "unavailable"]


class DecisionEntry(Model):
    """One decision at a gate, with its signature checked again against the roster key."""

    stage: str
    kind: str
    person: str
    role: str
    on_behalf_of: str | None = None
    at: datetime
    comment: str = ""
    valid: bool = True
    invalidated_reason: str = ""
    signature: DecisionSignature | None = None
    key_id: str | None = None
    signature_check: SignatureCheck = "unsigned"
    #: How the signed request was signed: "CLI key", "passkey" or "gateway (SSO <issuer>
    #: <subject>)" (from its attestation in the audit chain; "" when unsigned).
    signed_with: str = ""


class DeliveryEntry(Model):
    """One delivery of a notification, as the outbox recorded it."""

    key: str
    recipient: str
    recipient_name: str = ""
    channel: str
    channel_type: str
    written_at: str


class NotificationEntry(Model):
    """One notification (one event told to its audience) and every delivery of it."""

    key: str
    event: str
    audit_seq: int | None = None
    stage: str | None = None
    subject: str
    action_needed: str = ""
    due: str | None = None
    occurred_at: str
    deliveries: list[DeliveryEntry] = Field(default_factory=list)


class Dossier(Model):
    """Everything compliance needs about one release, in one file."""

    format: str = DOSSIER_FORMAT
    exported_at: datetime
    release_id: str
    workflow_id: str
    run_id: str | None = None
    execution: str = Field(description="the workflow's execution status when exported")
    policy: Policy | None = None
    policy_sha256: str
    policy_check: PolicyCheck
    status: ReleaseStatus
    decisions: list[DecisionEntry] = Field(default_factory=list)
    notifications: list[NotificationEntry] = Field(default_factory=list)
    notifications_source: str = ""
    audit_head: str
    audit: list[AuditEvent]
    #: Every key an attestation or a signed head in the chain names, and the keys that certify
    #: them, up to the trust root: what ``audit verify`` needs offline.
    keys: list[KeyRecord] = Field(default_factory=list)
    #: The heads the worker signed (the chain's ``audit_head_signed`` events), for the reader.
    signed_heads: list[SignedHead] = Field(default_factory=list)
    #: The heads anchored for this release outside the workflow, as read at export.
    anchors: list[Anchor] = Field(default_factory=list)
    #: Where ``anchors`` were read ("" when the anchor table could not be reached).
    anchors_source: str = ""
    #: The identity log entries (signed by identity admins) that linked, or unlinked, the single
    #: sign-on identities gateway-attested requests name: ``audit verify`` checks each gateway
    #: attestation's identity was linked to its actor when signed.
    sso_links: list[IdentityLogEntry] = Field(default_factory=list)


def build_dossier(
    *,
    status: ReleaseStatus,
    audit: list[AuditEvent],
    policy: Policy | None,
    outbox: Iterable[Mapping[str, Any]],
    exported_at: datetime,
    workflow_id: str,
    run_id: str | None,
    execution: str,
    notifications_source: str = "",
    keys: Iterable[KeyRecord] = (),
    anchors: Iterable[Anchor] = (),
    anchors_source: str = "",
    sso_links: Iterable[IdentityLogEntry] = (),
) -> Dossier:
    """Assemble the dossier of one release.

    Args:
        status: the release's status (the workflow result's, or ``get_status``).
        audit: the full audit chain.
        policy: the policy snapshot from the workflow's input, if it could be read.
        outbox: outbox lines (any release's; only this release's notifications are kept).
        exported_at: when the export was made.
        workflow_id: the workflow id.
        run_id: the run id, if known.
        execution: the workflow's execution status (``running``, ``completed``...).
        notifications_source: where the outbox lines came from, for the reader.
        keys: the key records the chain's signatures need, with their certificate chains.
        anchors: the heads anchored for the release.
        anchors_source: where the anchors were read.
        sso_links: the identity log entries linking the single sign-on identities that
            gateway-attested requests name.
    """
    unique: dict[str, KeyRecord] = {}
    for record in keys:
        unique.setdefault(record.key_id, record)
    anchors = list(anchors)
    return Dossier(
        exported_at=exported_at,
        release_id=status.release_id,
        workflow_id=workflow_id,
        run_id=run_id,
        execution=execution,
        policy=policy,
        policy_sha256=status.policy_sha256,
        policy_check=_policy_check(policy, status),
        status=status,
        decisions=decisions_of(status, policy, audit),
        notifications=notifications_of(status.release_id, outbox),
        notifications_source=notifications_source,
        audit_head=audit[-1].hash if audit else status.audit_head,
        audit=audit,
        keys=sorted(unique.values(), key=lambda k: k.key_id),
        signed_heads=signed_heads_of(audit, anchors),
        anchors=anchors,
        anchors_source=anchors_source,
        sso_links=sorted({e.seq: e for e in sso_links}.values(), key=lambda e: e.seq),
    )


def signed_heads_of(
    audit: Iterable[AuditEvent], anchors: Iterable[Anchor] = ()
) -> list[SignedHead]:
    """The signed heads of this chain: the anchored heads it agrees with (a release's heads live
    in the anchor table), and any a chain recorded as events (releases of the first version of
    signed heads), in order of the event they cover."""
    events = list(audit)
    found = {
        (h.head.seq, h.head.hash): h
        for h in (SignedHead.model_validate(e.details) for e in events if e.action == HEAD_ACTION)
    }
    for anchor in anchors:
        head = anchor.head
        if head.seq < len(events) and events[head.seq].hash == head.hash:
            found.setdefault(
                (head.seq, head.hash), SignedHead(head=head, signature=anchor.signature)
            )
    return [found[key] for key in sorted(found)]


def key_ids_used(audit: Iterable[AuditEvent]) -> list[str]:
    """The key ids the chain's attestations and signed heads name, in order of first use."""
    found: dict[str, None] = {}
    for event in audit:
        if event.action == HEAD_ACTION:
            head = event.details.get("head")
            key_id = head.get("key_id") if isinstance(head, dict) else None
        else:
            attestation = event.details.get("attestation")
            statement = attestation.get("statement") if isinstance(attestation, dict) else None
            key_id = statement.get("key_id") if isinstance(statement, dict) else None
        if isinstance(key_id, str):
            found.setdefault(key_id, None)
    return list(found)


def sso_identities(audit: Iterable[AuditEvent]) -> list[tuple[str, str]]:
    """The single sign-on identities (issuer, subject) the chain's gateway attestations name."""
    found: dict[tuple[str, str], None] = {}
    for event in audit:
        attestation = event.details.get("attestation")
        statement = attestation.get("statement") if isinstance(attestation, dict) else None
        sso = statement.get("sso") if isinstance(statement, dict) else None
        if isinstance(sso, dict):
            issuer, subject = sso.get("issuer"), sso.get("subject")
            if isinstance(issuer, str) and isinstance(subject, str):
                found.setdefault((issuer, subject), None)
    return list(found)


def _policy_check(policy: Policy | None, status: ReleaseStatus) -> PolicyCheck:
    if policy is None:
        return "unavailable"
    return (
        "matches"
        if digest_of(policy.model_dump(mode="json")) == status.policy_sha256
        else ("does not match")
    )


def signature_kinds(audit: Iterable[AuditEvent]) -> dict[tuple[str, str, str, str], str]:
    """(actor, action, stage, key id) -> how each attested request was signed
    (:func:`gatekeeper.statements.signature_label`)."""
    found: dict[tuple[str, str, str, str], str] = {}
    for event in audit:
        attestation = event.details.get("attestation")
        if not isinstance(attestation, dict):
            continue
        statement = attestation.get("statement")
        if not isinstance(statement, dict):
            continue
        binding = statement.get("binding")
        stage = binding.get("stage") if isinstance(binding, dict) else None
        where = (
            str(statement.get("actor")),
            str(statement.get("action")),
            str(stage),
            str(statement.get("key_id")),
        )
        found[where] = signature_label(str(attestation.get("kind", "key")), statement.get("sso"))
    return found


def decisions_of(
    status: ReleaseStatus, policy: Policy | None, audit: Iterable[AuditEvent] = ()
) -> list[DecisionEntry]:
    """Every decision at every gate, in the order they were made."""
    kinds = signature_kinds(audit)
    entries = [
        DecisionEntry(
            stage=gate.stage,
            kind=decision.kind.value,
            person=decision.person,
            role=decision.role,
            on_behalf_of=decision.on_behalf_of,
            at=decision.at,
            comment=decision.comment,
            valid=decision.valid,
            invalidated_reason=decision.invalidated_reason,
            signature=decision.signature,
            key_id=decision.key_id,
            signed_with=kinds.get(
                (decision.person, decision.kind.value, gate.stage, decision.key_id or ""),
                "CLI key" if decision.key_id is not None else "",
            ),
            signature_check="signed request"
            if decision.key_id is not None
            else _signature_check(
                status.release_id,
                gate.stage,
                decision.kind.value,
                decision.person,
                decision.role,
                decision.signature,
                policy,
            ),
        )
        for gate in status.gates.values()
        for decision in gate.decisions
    ]
    return sorted(entries, key=lambda e: e.at)


def _signature_check(
    release_id: str,
    stage: str,
    kind: str,
    person: str,
    role: str,
    signature: DecisionSignature | None,
    policy: Policy | None,
) -> SignatureCheck:
    if signature is None:
        return "unsigned"
    if policy is None:
        return "no policy"
    member = policy.person(person)
    if member is None or not member.public_key:
        return "no key on the roster"
    payload = signing.decision_payload(
        release_id=release_id,
        stage=stage,
        decision=kind,
        decider=person,
        role=role,
        signed_at=signature.signed_at,
        nonce=signature.nonce,
        artifact_sha256=signature.artifact_sha256,
    )
    return "verified" if signing.verify(member.public_key, payload, signature.value) else "invalid"


def notifications_of(
    release_id: str, outbox: Iterable[Mapping[str, Any]]
) -> list[NotificationEntry]:
    """This release's notifications, each with its deliveries, in the order they were written."""
    found: dict[str, NotificationEntry] = {}
    for line in outbox:
        notification = line.get("notification")
        recipient = line.get("recipient")
        if not isinstance(notification, dict) or not isinstance(recipient, dict):
            continue
        if notification.get("release_id") != release_id:
            continue
        key = str(notification.get("idempotency_key", ""))
        entry = found.get(key)
        if entry is None:
            entry = found[key] = NotificationEntry(
                key=key,
                event=str(notification.get("event", "")),
                audit_seq=_audit_seq(key),
                stage=notification.get("stage"),
                subject=str(notification.get("subject", "")),
                action_needed=str(notification.get("action_needed") or ""),
                due=notification.get("due"),
                occurred_at=str(notification.get("occurred_at", "")),
            )
        entry.deliveries.append(
            DeliveryEntry(
                key=str(line.get("key", "")),
                recipient=str(recipient.get("id", "")),
                recipient_name=str(recipient.get("name") or ""),
                channel=str(line.get("channel", "")),
                channel_type=str(line.get("channel_type", "")),
                written_at=str(line.get("written_at", "")),
            )
        )
    return list(found.values())


def _audit_seq(key: str) -> int | None:
    # Notification keys are "<release>:<event>:<audit seq>".
    tail = key.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None

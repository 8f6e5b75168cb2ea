"""Checks every decision path shares: a release that has ended, signatures, audited refusals.

Plain functions of the :class:`~gatekeeper.ledger.state.Ledger`; every decider calls them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gatekeeper import signing
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.messages import (
    DecisionSignature,
)
from gatekeeper.rules import (
    SIGNATURES,
    Refusal,
    Rule,
    refuse,
    require_person,
)
from gatekeeper.statements import RequestSignature
from gatekeeper.text import when

#: How far ahead a signature's time may be (clock skew between a laptop and the server).
SIGNATURE_SKEW = timedelta(minutes=5)


def not_terminal(ledger: Ledger) -> None:
    """Refuse any decision on a release that has ended."""
    if ledger.is_terminal():
        raise refuse(
            Rule.RELEASE_TERMINAL,
            f"release {ledger.status.release_id} is {ledger.status.state.value}; "
            "it accepts no further decisions",
        )


def check_signature(
    ledger: Ledger,
    *,
    person_id: str,
    signature: RequestSignature | DecisionSignature | None,
    stage: str | None,
    decision: str,
    role: str,
    subject: str,
    now: datetime,
) -> None:
    """The pre-registry check of a decision signed with a roster key (kept so histories
    recorded with it replay). A request signature was checked by the worker's validator
    against its identity registry (``gatekeeper.signed_requests``) and is not checked here."""
    if isinstance(signature, RequestSignature):
        return
    policy, spec = ledger.policy, ledger.spec
    if signature is None:
        unsigned = SIGNATURES.unsigned(policy, person_id, signed=False)
        if unsigned is not None:
            raise unsigned
        return
    person = require_person(policy, person_id)
    if not person.public_key:
        raise refuse(Rule.SIGNATURE_INVALID, f"{person_id} has no public key on the roster")
    if stage is None:
        raise refuse(Rule.SIGNATURE_INVALID, "a signed decision must name its stage")
    if signature.artifact_sha256 != spec.artifact.sha256:
        raise refuse(
            Rule.SIGNATURE_INVALID,
            f"the signature is for artifact {signature.artifact_sha256[:12]}…, the release's "
            f"artifact is {spec.artifact.sha256[:12]}…",
        )
    age = now - signature.signed_at
    if age > policy.signature_max_age or -age > SIGNATURE_SKEW:
        raise refuse(
            Rule.SIGNATURE_STALE,
            f"the signature was made at {when(signature.signed_at)}; signatures are accepted "
            f"for {int(policy.signature_max_age.total_seconds() // 60)} minutes",
        )
    if signature.nonce in ledger.used_nonces:
        raise refuse(Rule.SIGNATURE_REPLAYED, "this signature was already used (replay refused)")
    payload = signing.decision_payload(
        release_id=ledger.status.release_id,
        stage=stage,
        decision=decision,
        decider=person_id,
        role=role,
        signed_at=signature.signed_at,
        nonce=signature.nonce,
        artifact_sha256=signature.artifact_sha256,
        subject=subject,
    )
    if not signing.verify(person.public_key, payload, signature.value):
        raise refuse(
            Rule.SIGNATURE_INVALID,
            f"the signature does not verify against {person_id}'s roster key",
        )


def record_refusal(
    ledger: Ledger, refusal: Refusal, now: datetime, actor: str, request: str, body: object
) -> None:
    """Record an audited refusal: the attempt and the rule it broke."""
    details = body if isinstance(body, dict) else {}
    ledger.audit(
        now,
        actor,
        "request_refused",
        {
            "request": request,
            "rule": refusal.rule.value,
            "reason": refusal.message,
            "payload": details,
        },
    )


def attested(
    details: dict[str, Any], signature: RequestSignature | DecisionSignature | None
) -> dict[str, Any]:
    """Audit details with a pre-registry signature, when the request has one. (A request
    signature's statement is added to the event as ``attestation`` by the workflow.)"""
    if not isinstance(signature, DecisionSignature):
        return details
    return {**details, "signature": signature.model_dump(mode="json")}

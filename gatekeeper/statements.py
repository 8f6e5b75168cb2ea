"""Signed requests: the exact bytes a person signs when they change something.

Every state-changing request (a decision, a delegation, an amend, a government response, a hold,
an access order's lift...) carries a ``signature`` object next to its fields::

    {"decider": "sam.safety", "role": "safety", "comment": "evals look right",
     "signature": {"key_id": "ed25519:…", "signed_at": "…", "nonce": "…",
                   "binding": {"subject_id": "aurora-2", "first_run_id": "…", "stage": "…",
                               "artifact_sha256": "…", "evidence": {"eval-report": "…"}},
                   "value": "<base64 Ed25519 signature>"}}

The signature covers the canonical JSON of a *statement* (:func:`statement_bytes`): the update's
name, the actor the request names, the request itself exactly as sent (every field but
``signature``: comment, parameters, dates), the *binding* (what the signer saw: which release or
order and its first run, the stage, the artifact digest and every evidence digest), the key id,
the time of signing and a one-time nonce. The worker recomputes the binding from its own state;
the binding inside the signature only lets a refusal say precisely what differs.
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, Field

from gatekeeper.canonical import canonical_json
from gatekeeper.models.base import KEY_ID_PATTERN, MAX_EVIDENCE, Model

# One spelling of keys, times and verification for decisions and requests, re-exported here.
from gatekeeper.signing import public_key_b64 as public_key_b64
from gatekeeper.signing import timestamp as timestamp

#: The field of a request that holds its signature; never part of what is signed.
SIGNATURE_FIELD = "signature"


class Binding(Model):
    """What the signer saw: the release (or order) and its state that the request is about."""

    #: The release id, or the access order's id.
    subject_id: str = Field(min_length=1, max_length=64)
    #: The workflow's first run id: a later release reusing the id is another subject.
    first_run_id: str = Field(min_length=1, max_length=64)
    #: The stage current when signing (``None`` for orders and for releases between stages).
    stage: str | None = Field(default=None, max_length=64)
    artifact_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: Evidence id -> sha256 of every evidence item the release carries.
    evidence: dict[str, str] = Field(default_factory=dict, max_length=MAX_EVIDENCE)


class RequestSignature(Model):
    """A signature over a request's statement, by a registered key."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    signed_at: AwareDatetime
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    binding: Binding
    value: str = Field(pattern=r"^[A-Za-z0-9+/=]{40,200}$")


def unsigned_body(request: dict[str, Any]) -> dict[str, Any]:
    """The request as sent, without its signature: what the statement covers."""
    return {k: v for k, v in request.items() if k != SIGNATURE_FIELD}


def statement(
    *,
    action: str,
    actor: str,
    request: dict[str, Any],
    binding: Binding,
    key_id: str,
    signed_at: datetime,
    nonce: str,
) -> dict[str, Any]:
    """The statement as plain JSON data (what the audit trail keeps to re-verify it)."""
    return {
        "v": 1,
        "type": "gatekeeper.request",
        "action": action,
        "actor": actor,
        "request": unsigned_body(request),
        "binding": binding.model_dump(mode="json"),
        "key_id": key_id,
        "signed_at": timestamp(signed_at),
        "nonce": nonce,
    }


def statement_bytes(**fields: Any) -> bytes:
    """Canonical JSON of :func:`statement` (same keyword arguments)."""
    return canonical_json(statement(**fields))


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def sign_request(
    private_key: Ed25519PrivateKey,
    *,
    action: str,
    actor: str,
    request: dict[str, Any],
    binding: Binding,
    signed_at: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """``request`` (plain JSON data) with a ``signature`` added, as a client sends it."""
    from gatekeeper.identity.keys import key_id_of  # it imports the models, which import us

    key_id = key_id_of(public_key_b64(private_key))
    signed_at = signed_at or datetime.now(UTC)
    nonce = nonce or new_nonce()
    payload = statement_bytes(
        action=action,
        actor=actor,
        request=request,
        binding=binding,
        key_id=key_id,
        signed_at=signed_at,
        nonce=nonce,
    )
    signature = RequestSignature(
        key_id=key_id,
        signed_at=signed_at,
        nonce=nonce,
        binding=binding,
        value=base64.b64encode(private_key.sign(payload)).decode("ascii"),
    )
    return {**unsigned_body(request), SIGNATURE_FIELD: signature.model_dump(mode="json")}


def binding_difference(expected: Binding, claimed: Binding) -> str | None:
    """``None`` when the signer saw what the worker holds, else what differs, in one line."""
    if claimed.subject_id != expected.subject_id:
        return f"the signature is for {claimed.subject_id}, not {expected.subject_id}"
    if claimed.first_run_id != expected.first_run_id:
        return (
            f"the signature is for an earlier release with the id {expected.subject_id} "
            f"(run {claimed.first_run_id[:8]}…)"
        )
    if claimed.stage != expected.stage:
        return (
            f"the signature is for stage {claimed.stage or '(none)'}, the current stage is "
            f"{expected.stage or '(none)'}"
        )
    if claimed.artifact_sha256 != expected.artifact_sha256:
        return (
            f"the signature is for artifact {(claimed.artifact_sha256 or '-')[:12]}…, the "
            f"release's artifact is {(expected.artifact_sha256 or '-')[:12]}…; look again and sign"
        )
    if claimed.evidence != expected.evidence:
        changed = sorted(
            k
            for k in set(claimed.evidence) | set(expected.evidence)
            if claimed.evidence.get(k) != expected.evidence.get(k)
        )
        return (
            f"the signature covers other evidence than the release holds "
            f"({', '.join(changed)}); look again and sign"
        )
    return None

"""The worker's check of a signed request, the same for every update of every workflow.

Each state-changing update names its actor in one field (:data:`ACTOR_FIELDS`). The update's
validator calls :func:`check` with the request exactly as sent (plain JSON), the worker's own
binding (:func:`binding_of` for a release, :func:`order_binding` for an access order), the key
directory the worker installed (``gatekeeper.identity.authority``) and the nonces the workflow
has used; a request that is not signed by a registered, currently valid key of its actor, over
what the worker holds now, is refused in one line and leaves no trace. The handler (which also
runs on replay, and so never reads the directory) records :func:`attestation` in the accepted
request's audit event and remembers the nonce.

Requests that access orders send to releases (actor ``access-order-<id>``) are signed by a
worker's own key (``principal_kind`` worker): the order's person signed the order's update, the
worker relays it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gatekeeper.identity.authority import KeyDirectory
from gatekeeper.identity.keys import PrincipalKind
from gatekeeper.ids import ORDER_ACTOR_PREFIX
from gatekeeper.rules import Refusal, Rule, refuse
from gatekeeper.signing import verify as verify_bytes
from gatekeeper.statements import (
    SIGNATURE_FIELD,
    Binding,
    RequestSignature,
    binding_difference,
    statement,
    statement_bytes,
)

if TYPE_CHECKING:
    from gatekeeper.models.status import ReleaseStatus

#: The field of each state-changing update's request that names who asks.
ACTOR_FIELDS: dict[str, str] = {
    # releases
    "approve": "decider",
    "reject": "decider",
    "request_changes": "decider",
    "amend": "by",
    "record_government_response": "by",
    "hold": "by",
    "resume": "by",
    "withdraw": "by",
    "delegate": "by",
    "revoke_delegation": "by",
    "suspend_access": "by",
    "restore_access": "by",
    "approve_partners": "by",
    "attest_authorship": "by",
    # access orders
    "apply_order": "issued_by",
    "exempt": "by",
    "lift": "by",
}

#: How far ahead of the worker's clock a signature's time may be (a laptop's clock skew).
FUTURE_SKEW = timedelta(minutes=5)


def binding_of(
    *,
    release_id: str,
    first_run_id: str,
    stage: str | None,
    artifact_sha256: str | None,
    evidence: Mapping[str, str],
) -> Binding:
    """What a signer of a release request binds; the worker computes it from its ledger, the
    client from ``get_status`` (``ReleaseStatus.binding()``), so both compute the same."""
    return Binding(
        subject_id=release_id,
        first_run_id=first_run_id,
        stage=stage,
        artifact_sha256=artifact_sha256,
        evidence=dict(sorted(evidence.items())),
    )


def release_binding(status: ReleaseStatus) -> Binding:
    """:func:`binding_of` a release's status (what ``get_status`` answers)."""
    spec = status.spec
    return binding_of(
        release_id=status.release_id,
        first_run_id=status.first_run_id,
        stage=status.stage,
        artifact_sha256=spec.artifact.sha256,
        evidence={e.id: e.sha256 for e in spec.evidence},
    )


#: The first run id an order's *start* binds: the run does not exist yet when it is signed, and
#: an order id is used once (the access registry refuses an order id it knows).
NEW_ORDER = "new-order"


def order_binding(order_id: str, first_run_id: str = NEW_ORDER) -> Binding:
    """What a signer of an access order's request binds: the order and its first run (for the
    order's start, :data:`NEW_ORDER`)."""
    return Binding(subject_id=order_id, first_run_id=first_run_id)


def signature_of(request: Mapping[str, Any]) -> RequestSignature | None:
    """The request's signature in the current form, or ``None`` if it carries none.

    Raises:
        Refusal: a ``signature`` that is not a request signature (e.g. the pre-registry form).
    """
    raw = request.get(SIGNATURE_FIELD)
    if raw is None:
        return None
    try:
        return RequestSignature.model_validate(raw)
    except ValidationError:
        raise refuse(
            Rule.SIGNATURE_INVALID,
            "the signature is not a request signature over the current statement; sign again "
            "with the current gatekeeper CLI (or statements.sign_request)",
        ) from None


def check(
    *,
    action: str,
    request: Mapping[str, Any],
    expected: Binding,
    directory: KeyDirectory | None,
    now: datetime,
    max_age: timedelta,
    used_nonces: Collection[str],
    unsigned_allowed: bool,
) -> None:
    """Refuse (unaudited, one line) a request that is not signed as the worker requires.

    ``request`` is the update's argument as sent (plain JSON), ``expected`` the worker's own
    binding, ``now`` the worker's real clock (validators never run on replay, so they may read
    it; a signature's age is real time since signing, whatever a test did to the workflow's
    clock).
    """
    actor = str(request.get(ACTOR_FIELDS[action], ""))
    signature = signature_of(request)
    if signature is None:
        if unsigned_allowed:
            return
        raise refuse(
            Rule.SIGNATURE_REQUIRED,
            f"{action} must be signed by a registered key of {actor or 'its actor'}; create one "
            f"with `gatekeeper keys generate --as {actor or 'PERSON'}` (the CLI signs with it)",
        )
    if directory is None:
        raise refuse(
            Rule.SIGNATURE_INVALID,
            "this worker has no identity registry installed, so no signature can count",
        )
    record = directory.key(signature.key_id)
    if record is None:
        raise refuse(
            Rule.SIGNATURE_UNKNOWN_KEY, f"key {signature.key_id} is not registered with this worker"
        )
    if actor.startswith(ORDER_ACTOR_PREFIX):
        if record.principal_kind is not PrincipalKind.WORKER:
            raise refuse(
                Rule.SIGNATURE_WRONG_SIGNER,
                f"{action} by {actor} must be signed by a Gatekeeper worker's key, not by "
                f"{record.principal}'s",
            )
    elif record.principal != actor or record.principal_kind is not PrincipalKind.PERSON:
        raise refuse(
            Rule.SIGNATURE_WRONG_SIGNER,
            f"key {signature.key_id} belongs to {record.principal}, not to {actor}",
        )
    why = record.why_not_valid_at(signature.signed_at)
    if why is not None:
        raise refuse(Rule.SIGNATURE_KEY_NOT_VALID, why)
    age = now - signature.signed_at
    if age > max_age:
        raise refuse(
            Rule.SIGNATURE_STALE,
            f"the signature was made {int(age.total_seconds() // 60)} min ago; signatures count "
            f"for {int(max_age.total_seconds() // 60)} min: look again and sign",
        )
    if -age > FUTURE_SKEW:
        raise refuse(
            Rule.SIGNATURE_STALE,
            f"the signature is dated {int(-age.total_seconds() // 60)} min in the future; "
            "check the signer's clock",
        )
    if signature.nonce in used_nonces:
        raise refuse(Rule.SIGNATURE_REPLAYED, "this signature was already used (replay refused)")
    difference = binding_difference(expected, signature.binding)
    if difference is not None:
        raise refuse(Rule.SIGNATURE_BINDING, difference)
    payload = statement_bytes(
        action=action,
        actor=actor,
        request=dict(request),
        binding=expected,
        key_id=signature.key_id,
        signed_at=signature.signed_at,
        nonce=signature.nonce,
    )
    if not _well_formed(signature.value) or not verify_bytes(
        record.public_key, payload, signature.value
    ):
        raise refuse(
            Rule.SIGNATURE_INVALID,
            f"the signature does not verify with key {signature.key_id} of {record.principal} "
            f"over this {action} request",
        )


def _well_formed(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 64
    except (binascii.Error, ValueError):
        return False


def attestation(action: str, request: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the accepted request's audit event keeps (``details["attestation"]``), or ``None``
    for an unsigned (or pre-registry signed) request. Built from the request alone, so the
    handler computes the same live and on replay; the binding is the signer's, which the
    validator found equal to the worker's."""
    try:
        signature = signature_of(request)
    except Refusal:
        return None
    if signature is None:
        return None
    return {
        "statement": statement(
            action=action,
            actor=str(request.get(ACTOR_FIELDS[action], "")),
            request=dict(request),
            binding=signature.binding,
            key_id=signature.key_id,
            signed_at=signature.signed_at,
            nonce=signature.nonce,
        ),
        "signature": signature.value,
    }


def nonce_of(request: Mapping[str, Any]) -> str | None:
    try:
        signature = signature_of(request)
    except Refusal:
        return None
    return signature.nonce if signature is not None else None

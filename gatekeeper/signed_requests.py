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

A signature has a kind (``gatekeeper.statements``): ``key`` (the actor's Ed25519 CLI key),
``webauthn`` (the actor's registered passkey: :func:`gatekeeper.webauthn.assertion_problem`
checks the assertion against the challenge recomputed from the worker's binding) or ``gateway``
(a registered gateway's key attesting a single sign-on identity the registry links to the actor;
only where the release's policy lists the action in ``gateway_attestation``, never on an access
order's update).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gatekeeper.identity.authority import KeyDirectory
from gatekeeper.identity.keys import KeyKind, KeyRecord, PrincipalKind
from gatekeeper.ids import ORDER_ACTOR_PREFIX
from gatekeeper.rules import Refusal, Rule, refuse
from gatekeeper.signing import verify as verify_bytes
from gatekeeper.statements import (
    KIND_LABELS,
    SIGNATURE_FIELD,
    Binding,
    RequestSignature,
    binding_difference,
    challenge,
    statement,
    statement_bytes,
)
from gatekeeper.webauthn import CHALLENGE_DIFFERS, assertion_problem

if TYPE_CHECKING:
    from gatekeeper.models.status import ReleaseHead, ReleaseStatus

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

#: Updates of access orders: never gateway-attested.
ORDER_ACTIONS = frozenset({"apply_order", "exempt", "lift"})


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


def release_binding(status: ReleaseStatus | ReleaseHead) -> Binding:
    """:func:`binding_of` a release's status (what ``get_status`` answers) or head (what
    ``get_head`` answers, the same binding in a few hundred bytes)."""
    # Imported here: at import time it is a cycle (gatekeeper.models imports gatekeeper.statements).
    from gatekeeper.models.status import ReleaseHead

    head = status if isinstance(status, ReleaseHead) else ReleaseHead.of(status)
    return binding_of(
        release_id=head.release_id,
        first_run_id=head.first_run_id,
        stage=head.stage,
        artifact_sha256=head.artifact_sha256,
        evidence=head.evidence,
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
    gateway_actions: Collection[str] = (),
    policy_ref: str = "",
) -> None:
    """Refuse (unaudited, one line) a request that is not signed as the worker requires.

    ``request`` is the update's argument as sent (plain JSON), ``expected`` the worker's own
    binding, ``now`` the worker's real clock (validators never run on replay, so they may read
    it; a signature's age is real time since signing, whatever a test did to the workflow's
    clock). ``gateway_actions`` is the release's policy's ``gateway_attestation`` (updates, or
    ``*``), ``policy_ref`` its ``id@version`` for the refusal.
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
    if signature.kind == "gateway":
        _gateway_allowed(action, actor, gateway_actions, policy_ref)
    record = directory.key(signature.key_id)
    if record is None:
        raise refuse(
            Rule.SIGNATURE_UNKNOWN_KEY, f"key {signature.key_id} is not registered with this worker"
        )
    _check_signer(action, actor, signature, record, directory)
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
    fields: dict[str, Any] = {
        "action": action,
        "actor": actor,
        "request": dict(request),
        "binding": expected,
        "key_id": signature.key_id,
        "signed_at": signature.signed_at,
        "nonce": signature.nonce,
    }
    if signature.kind == "webauthn":
        assert signature.webauthn is not None  # RequestSignature checks kind and proof agree
        problem = assertion_problem(
            record,
            challenge=challenge(**fields),
            authenticator_data=signature.webauthn.authenticator_data,
            client_data_json=signature.webauthn.client_data_json,
            signature_b64=signature.value,
        )
        if problem is not None:
            rule = (
                Rule.SIGNATURE_BINDING if problem == CHALLENGE_DIFFERS else Rule.SIGNATURE_INVALID
            )
            raise refuse(rule, problem)
        return
    if signature.sso is not None:
        fields["sso"] = signature.sso.statement()
    payload = statement_bytes(**fields)
    if not _well_formed(signature.value) or not verify_bytes(
        record.public_key, payload, signature.value
    ):
        raise refuse(
            Rule.SIGNATURE_INVALID,
            f"the signature does not verify with key {signature.key_id} of {record.principal} "
            f"over this {action} request",
        )


def _gateway_allowed(
    action: str, actor: str, gateway_actions: Collection[str], policy_ref: str
) -> None:
    if action in ORDER_ACTIONS or actor.startswith(ORDER_ACTOR_PREFIX):
        raise refuse(
            Rule.SIGNATURE_GATEWAY_NOT_ALLOWED,
            f"{action} on an access order is never gateway-attested; sign with your passkey or "
            "CLI key",
        )
    if action not in gateway_actions and "*" not in gateway_actions:
        raise refuse(
            Rule.SIGNATURE_GATEWAY_NOT_ALLOWED,
            f"the policy {policy_ref or '(unknown)'} does not accept gateway-attested {action}; "
            "sign with your passkey or CLI key",
        )


def gateway_problem(
    action: str, actor: str, gateway_actions: Collection[str], policy_ref: str
) -> str | None:
    """Why a gateway may not attest ``action`` by ``actor`` under a policy accepting
    ``gateway_actions`` (the worker's own check, as one line), or ``None``."""
    try:
        _gateway_allowed(action, actor, gateway_actions, policy_ref)
    except Refusal as refusal:
        return refusal.message
    return None


def _check_signer(
    action: str,
    actor: str,
    signature: RequestSignature,
    record: KeyRecord,
    directory: KeyDirectory,
) -> None:
    """Refuse a signature whose key may not sign for ``actor`` with the signature's kind."""
    if signature.kind == "gateway":
        if record.principal_kind is not PrincipalKind.GATEWAY or record.kind is not KeyKind.ED25519:
            raise refuse(
                Rule.SIGNATURE_WRONG_SIGNER,
                f"key {signature.key_id} belongs to {record.principal}, a "
                f"{record.principal_kind.value}, not a registered gateway",
            )
        assert signature.sso is not None  # RequestSignature checks kind and claims agree
        sso = signature.sso
        linked = directory.sso_person(sso.issuer, sso.subject)
        if linked != actor:
            raise refuse(
                Rule.SIGNATURE_WRONG_SIGNER,
                f"the single sign-on identity {sso.issuer} {sso.subject} is "
                + (f"linked to {linked}, not to {actor}" if linked else "not linked to anyone")
                + "; an identity admin links it (`gatekeeper keys sso link`)",
            )
        if sso.auth_time - signature.signed_at > FUTURE_SKEW:
            raise refuse(
                Rule.SIGNATURE_INVALID,
                "the gateway attests a sign-in after the time of signing",
            )
        return
    if actor.startswith(ORDER_ACTOR_PREFIX):
        if record.principal_kind is not PrincipalKind.WORKER or signature.kind != "key":
            raise refuse(
                Rule.SIGNATURE_WRONG_SIGNER,
                f"{action} by {actor} must be signed by a Gatekeeper worker's key, not by "
                f"{record.principal}'s",
            )
        return
    if record.principal != actor or record.principal_kind is not PrincipalKind.PERSON:
        raise refuse(
            Rule.SIGNATURE_WRONG_SIGNER,
            f"key {signature.key_id} belongs to {record.principal}, not to {actor}",
        )
    wanted = KeyKind.WEBAUTHN if signature.kind == "webauthn" else KeyKind.ED25519
    if record.kind is not wanted:
        raise refuse(
            Rule.SIGNATURE_WRONG_SIGNER,
            f"key {signature.key_id} of {actor} is a {_label_of(record.kind)}, but the request "
            f"is signed as a {KIND_LABELS[signature.kind]}",
        )


def _label_of(kind: KeyKind) -> str:
    return KIND_LABELS["webauthn" if kind is KeyKind.WEBAUTHN else "key"]


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
    recorded: dict[str, Any] = {
        "statement": statement(
            action=action,
            actor=str(request.get(ACTOR_FIELDS[action], "")),
            request=dict(request),
            binding=signature.binding,
            key_id=signature.key_id,
            signed_at=signature.signed_at,
            nonce=signature.nonce,
            sso=signature.sso.statement() if signature.sso is not None else None,
        ),
        "signature": signature.value,
    }
    if signature.kind != "key":
        recorded["kind"] = signature.kind
    if signature.webauthn is not None:
        recorded["webauthn"] = signature.webauthn.model_dump(mode="json")
    return recorded


def nonce_of(request: Mapping[str, Any]) -> str | None:
    try:
        signature = signature_of(request)
    except Refusal:
        return None
    return signature.nonce if signature is not None else None

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

A signature has one of three kinds (``RequestSignature.kind``):

- ``key`` (the default, left out of the JSON): an Ed25519 signature by the actor's CLI key over
  :func:`statement_bytes`;
- ``webauthn``: a passkey assertion (WebAuthn, ES256). The browser's challenge is
  :func:`challenge`, the sha256 of the same statement; the signature carries the authenticator
  data and client data JSON the browser returned, and ``value`` is the DER ECDSA signature over
  ``authenticatorData || sha256(clientDataJSON)`` (:mod:`gatekeeper.webauthn` checks it);
- ``gateway``: the web console's Ed25519 signature over the statement with ``sso`` added (the
  OIDC identity it attests), by a key registered as a gateway, where the policy allows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import (
    AwareDatetime,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from gatekeeper.canonical import canonical_json
from gatekeeper.models.base import (
    KEY_ID_PATTERN,
    MAX_EVIDENCE,
    Model,
    ShortText,
    SsoIssuer,
    SsoSubject,
)

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


#: base64url without padding, as a browser returns WebAuthn buffers.
B64URL_PATTERN = r"^[A-Za-z0-9_-]*$"
#: Bounds on what a passkey assertion may carry: authenticator data is 37 bytes plus extensions,
#: client data JSON a few hundred bytes.
MAX_AUTHENTICATOR_DATA = 1024
MAX_CLIENT_DATA_JSON = 2048

SignatureKind = Literal["key", "webauthn", "gateway"]


class WebAuthnProof(Model):
    """What a passkey assertion carries besides its signature, exactly as the browser returned
    it (base64url, no padding)."""

    authenticator_data: str = Field(
        min_length=50, max_length=MAX_AUTHENTICATOR_DATA * 4 // 3 + 4, pattern=B64URL_PATTERN
    )
    client_data_json: str = Field(
        min_length=20, max_length=MAX_CLIENT_DATA_JSON * 4 // 3 + 4, pattern=B64URL_PATTERN
    )


class SsoClaims(Model):
    """The single sign-on identity a gateway attests: who the OIDC provider said signed in."""

    issuer: SsoIssuer
    subject: SsoSubject
    auth_time: AwareDatetime
    email: ShortText | None = None

    def statement(self) -> dict[str, Any]:
        """How the claims appear in a signed statement (one spelling of the time)."""
        data: dict[str, Any] = {
            "issuer": self.issuer,
            "subject": self.subject,
            "auth_time": timestamp(self.auth_time),
        }
        if self.email is not None:
            data["email"] = self.email
        return data


class RequestSignature(Model):
    """A signature over a request's statement, by a registered key (see the module's doc for
    the three kinds)."""

    key_id: str = Field(pattern=KEY_ID_PATTERN)
    signed_at: AwareDatetime
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    binding: Binding
    #: base64: a 64-byte Ed25519 signature (``key``, ``gateway``), or the DER ECDSA P-256
    #: signature of a passkey assertion (``webauthn``).
    value: str = Field(pattern=r"^[A-Za-z0-9+/=]{40,200}$")
    kind: SignatureKind = "key"
    webauthn: WebAuthnProof | None = None
    sso: SsoClaims | None = None

    @model_validator(mode="after")
    def _proof_fits_kind(self) -> RequestSignature:
        if (self.kind == "webauthn") != (self.webauthn is not None):
            raise ValueError("a passkey signature (kind webauthn) carries its webauthn proof")
        if (self.kind == "gateway") != (self.sso is not None):
            raise ValueError("a gateway signature (kind gateway) carries the sso it attests")
        return self

    @model_serializer(mode="wrap")
    def _as_before_for_keys(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """A ``key`` signature dumps exactly as before the other kinds existed (recorded
        requests and attestations stay byte-identical)."""
        del info
        data: dict[str, Any] = handler(self)
        if self.kind == "key":
            data.pop("kind", None)
        if self.webauthn is None:
            data.pop("webauthn", None)
        if self.sso is None:
            data.pop("sso", None)
        return data


#: How each kind of signature is named to people (refusals, the dossier, ``audit verify``).
KIND_LABELS: dict[str, str] = {"key": "CLI key", "webauthn": "passkey", "gateway": "gateway"}


def signature_label(kind: str, sso: Any = None) -> str:
    """``CLI key``, ``passkey`` or ``gateway (SSO <issuer> <subject>)``: how the dossier, the
    status and ``audit verify`` name the kind of a signature (``sso``: the attested claims, as
    :class:`SsoClaims` or its statement form)."""
    if kind == "gateway":
        if isinstance(sso, SsoClaims):
            return f"gateway (SSO {sso.issuer} {sso.subject})"
        if isinstance(sso, dict):
            return f"gateway (SSO {sso.get('issuer', '?')} {sso.get('subject', '?')})"
        return "gateway"
    return KIND_LABELS.get(kind, kind)


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
    sso: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The statement as plain JSON data (what the audit trail keeps to re-verify it).

    ``sso`` (a gateway's attestation: :meth:`SsoClaims.statement`) is included only when given.
    """
    body: dict[str, Any] = {
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
    if sso is not None:
        body["sso"] = sso
    return body


def statement_bytes(**fields: Any) -> bytes:
    """Canonical JSON of :func:`statement` (same keyword arguments)."""
    return canonical_json(statement(**fields))


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def b64url(data: bytes) -> str:
    """base64url without padding (how WebAuthn spells bytes)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    """The bytes of base64url text with or without padding. Raises ValueError when malformed."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64url") from err


def challenge(
    *,
    action: str,
    actor: str,
    request: dict[str, Any],
    binding: Binding,
    key_id: str,
    signed_at: datetime,
    nonce: str,
) -> bytes:
    """The 32 bytes a browser passes as the WebAuthn challenge: the sha256 of the statement
    (:func:`statement_bytes`), so the passkey signs exactly what a CLI key would."""
    return hashlib.sha256(
        statement_bytes(
            action=action,
            actor=actor,
            request=request,
            binding=binding,
            key_id=key_id,
            signed_at=signed_at,
            nonce=nonce,
        )
    ).digest()


def webauthn_signed(
    request: dict[str, Any],
    *,
    action: str,
    actor: str,
    binding: Binding,
    key_id: str,
    signed_at: datetime,
    nonce: str,
    authenticator_data: str,
    client_data_json: str,
    signature: str,
) -> dict[str, Any]:
    """``request`` with a passkey signature added, as the console sends it.

    ``authenticator_data``, ``client_data_json`` and ``signature`` are what the browser's
    ``navigator.credentials.get`` returned (base64url); the assertion's challenge must have been
    :func:`challenge` of the same fields.
    """
    value = base64.b64encode(b64url_decode(signature)).decode("ascii")
    signed = RequestSignature(
        key_id=key_id,
        signed_at=signed_at,
        nonce=nonce,
        binding=binding,
        value=value,
        kind="webauthn",
        webauthn=WebAuthnProof(
            authenticator_data=authenticator_data, client_data_json=client_data_json
        ),
    )
    return {**unsigned_body(request), SIGNATURE_FIELD: signed.model_dump(mode="json")}


def gateway_signed(
    private_key: Ed25519PrivateKey,
    request: dict[str, Any],
    *,
    action: str,
    actor: str,
    binding: Binding,
    sso: SsoClaims,
    signed_at: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """``request`` with the gateway's (the console's) signature attesting ``sso`` added: the
    worker accepts it only where the policy allows gateway-attested ``action`` and the registry
    links ``sso`` to ``actor``."""
    return _ed25519_signed(
        private_key,
        action=action,
        actor=actor,
        request=request,
        binding=binding,
        signed_at=signed_at,
        nonce=nonce,
        sso=sso,
    )


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
    return _ed25519_signed(
        private_key,
        action=action,
        actor=actor,
        request=request,
        binding=binding,
        signed_at=signed_at,
        nonce=nonce,
        sso=None,
    )


def _ed25519_signed(
    private_key: Ed25519PrivateKey,
    *,
    action: str,
    actor: str,
    request: dict[str, Any],
    binding: Binding,
    signed_at: datetime | None,
    nonce: str | None,
    sso: SsoClaims | None,
) -> dict[str, Any]:
    """``request`` signed with an Ed25519 key: a person's CLI key (``sso`` None, kind "key"), or
    a gateway's attesting ``sso`` (kind "gateway", the claims inside the statement)."""
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
        sso=sso.statement() if sso is not None else None,
    )
    value = base64.b64encode(private_key.sign(payload)).decode("ascii")
    if sso is None:
        signature = RequestSignature(
            key_id=key_id, signed_at=signed_at, nonce=nonce, binding=binding, value=value
        )
    else:
        signature = RequestSignature(
            key_id=key_id,
            signed_at=signed_at,
            nonce=nonce,
            binding=binding,
            value=value,
            kind="gateway",
            sso=sso,
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

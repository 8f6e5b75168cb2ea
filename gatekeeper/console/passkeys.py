"""The passkey page: register a passkey (WebAuthn), see whether an identity admin approved it.

Registration is two requests: ``POST /passkeys/options`` (the ``webauthn`` library's
``generate_registration_options``; its challenge is kept in the session, good for one
registration) and ``POST /passkeys`` with what ``navigator.credentials.create`` returned, checked
by ``verify_registration_response`` (the console's origin and rp id, user verification required,
ES256 only). The passkey is then recorded as a *pending* enrollment in the identity registry: it
signs nothing until an identity admin approves it (``gatekeeper keys passkey approve ID``), so a
compromised console cannot give anyone a key.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from webauthn import (
    generate_registration_options,
    options_to_json,
    verify_registration_response,
)
from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.cose import COSECRV, COSEAlgorithmIdentifier
from webauthn.helpers.decode_credential_public_key import DecodedEC2PublicKey
from webauthn.helpers.exceptions import InvalidCBORData, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from gatekeeper.console.auth import Refused, SignedInPerson, check_csrf, current_person
from gatekeeper.console.context import ConsoleContext, context
from gatekeeper.errors import GatekeeperError
from gatekeeper.identity.keys import KeyRecord, PendingPasskey
from gatekeeper.statements import b64url, b64url_decode

router = APIRouter()

#: Where the session keeps the registration challenge, and how long it is good for (seconds).
CHALLENGE_KEY = "passkey_challenge"
CHALLENGE_TTL = 300
#: The largest registration response read.
MAX_BODY = 64 * 1024
RP_NAME = "Gatekeeper"


def origin_of(url: str) -> str:
    """The web origin of the console's URL (scheme, host, port)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP address: browsers refuse one as a relying party id."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def approve_command(enrollment_id: str) -> str:
    return f"gatekeeper keys passkey approve {enrollment_id}"


def waiting_line(enrollment_id: str) -> str:
    """What the page says of a passkey an identity admin has not approved yet."""
    return f"pending: waiting for an identity admin: `{approve_command(enrollment_id)}`"


def _state(ctx: ConsoleContext, person: str) -> tuple[list[KeyRecord], list[PendingPasskey]]:
    registry = ctx.identity()
    return registry.passkeys(person), registry.passkey_enrollments(person)


@router.get("/passkeys")
async def passkeys_page(
    request: Request, person: SignedInPerson = Depends(current_person)
) -> Response:
    ctx = context(request)
    active, enrollments = await asyncio.to_thread(_state, ctx, person.id)
    return ctx.render(
        request,
        "passkeys.html",
        {
            "active": active,
            "labels": {e.key_id: e.label for e in enrollments if e.state == "approved"},
            "enrollments": list(reversed(enrollments)),
            "approve_command": approve_command,
            "rp_id": ctx.settings.rp_id,
            "origin": origin_of(ctx.settings.url),
            "rp_is_ip": is_ip_address(ctx.settings.rp_id),
        },
        person=person,
    )


@router.post("/passkeys/options")
async def registration_options(
    request: Request, person: SignedInPerson = Depends(current_person)
) -> Response:
    """Options for ``navigator.credentials.create`` (ES256, user verification required)."""
    check_csrf(request)
    ctx = context(request)
    active, enrollments = await asyncio.to_thread(_state, ctx, person.id)
    known = {k.credential_id for k in active if k.credential_id} | {
        e.credential_id for e in enrollments if e.state != "rejected"
    }
    options = generate_registration_options(
        rp_id=ctx.settings.rp_id,
        rp_name=RP_NAME,
        user_name=person.id,
        user_id=person.id.encode("utf-8"),
        user_display_name=person.name,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=b64url_decode(c)) for c in known],
        supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
        timeout=120_000,
    )
    request.session[CHALLENGE_KEY] = {
        "challenge": b64url(options.challenge),
        "person": person.id,
        "at": int(time.time()),
    }
    return Response(options_to_json(options), media_type="application/json")


def p256_point(cose_key: bytes) -> bytes:
    """The 65-byte uncompressed P-256 point of an ES256 COSE key (anything else is refused)."""
    decoded = decode_credential_public_key(cose_key)
    if (
        not isinstance(decoded, DecodedEC2PublicKey)
        or decoded.alg != COSEAlgorithmIdentifier.ECDSA_SHA_256
        or decoded.crv != COSECRV.P256
        or len(decoded.x) != 32
        or len(decoded.y) != 32
    ):
        raise Refused("refused: a passkey here must be an ES256 (P-256) key", 400)
    return b"\x04" + decoded.x + decoded.y


@router.post("/passkeys")
async def register(request: Request, person: SignedInPerson = Depends(current_person)) -> Response:
    """Check the new passkey and record it as a pending enrollment (an admin approves it)."""
    check_csrf(request)
    ctx = context(request)
    issued = request.session.pop(CHALLENGE_KEY, None)
    if (
        not isinstance(issued, dict)
        or issued.get("person") != person.id
        or not isinstance(issued.get("challenge"), str)
        or int(time.time()) - int(issued.get("at", 0)) > CHALLENGE_TTL
    ):
        raise Refused("refused: no registration is under way (or it took too long); try again", 400)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise Refused("refused: the registration response is too large", 413)
    try:
        body: Any = json.loads(raw)
    except ValueError:
        raise Refused("refused: the registration response is not JSON", 400) from None
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        raise Refused("refused: the registration response carries no credential", 400)
    raw_label = body.get("label")
    label = raw_label if isinstance(raw_label, str) else ""
    origin = origin_of(ctx.settings.url)
    try:
        verified = verify_registration_response(
            credential=body["credential"],
            expected_challenge=b64url_decode(issued["challenge"]),
            expected_rp_id=ctx.settings.rp_id,
            expected_origin=origin,
            require_user_verification=True,
            supported_pub_key_algs=[COSEAlgorithmIdentifier.ECDSA_SHA_256],
        )
    except (InvalidRegistrationResponse, InvalidCBORData, ValueError, KeyError, TypeError) as err:
        reason = " ".join(str(err).split())[:200]
        raise Refused(
            f"refused: the passkey's registration does not verify ({reason})", 400
        ) from None
    point = p256_point(verified.credential_public_key)
    try:
        pending = await asyncio.to_thread(
            ctx.identity().enroll_passkey,
            person.id,
            credential_id=b64url(verified.credential_id),
            public_key=base64.b64encode(point).decode("ascii"),
            rp_id=ctx.settings.rp_id,
            origin=origin,
            label=" ".join(label.split())[:100],
        )
    except GatekeeperError as err:
        raise Refused(str(err), 400) from err
    return JSONResponse(
        {
            "enrollment_id": pending.enrollment_id,
            "key_id": pending.key_id,
            "state": pending.state,
            "message": waiting_line(pending.enrollment_id),
        }
    )

"""The release page and every decision taken on it.

Routes (see docs/console.md):

- ``GET /releases/{id}``: the page (:mod:`gatekeeper.console.release_view`), with the forms the
  signed-in person may use (:mod:`gatekeeper.console.decisions`).
- ``POST /releases/{id}/prepare`` (JSON, ``X-CSRF-Token``): the WebAuthn challenge of the exact
  request a form will send, over the binding the page showed (what the person saw: stage,
  artifact and evidence digests), for the passkey the person chose on the form (``key_id``, one
  of their active passkeys; without it their newest). The browser's passkey signs it
  (static/console.js).
- ``POST /releases/{id}/act`` (form): rebuilds the same request from the same fields, attaches
  the passkey's assertion (``statements.webauthn_signed``) or, where the release's policy allows
  it and the console holds a gateway key, the console's attestation of the sign-in
  (``statements.gateway_signed``), and sends it as is. The worker checks everything again; its
  one-line answer (or refusal) is the flash line. A POST from someone the page would not offer
  the form is refused before anything is sent.
- ``POST /releases/{id}/verify``: the dossier's offline verification (chain, every signature,
  signed heads, anchors) run on the server, shown on the page.
- ``GET /releases/{id}/dossier``: the JSON dossier (what ``audit verify`` checks).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from gatekeeper.console.auth import (
    Refused,
    SignedInPerson,
    check_csrf,
    checked_form,
    current_person,
)
from gatekeeper.console.context import ConsoleContext, context
from gatekeeper.console.decisions import (
    DOING,
    FIELDS,
    MULTI_FIELDS,
    build_request,
    form_named,
    forms_for,
    gateway_actions,
    refusal,
)
from gatekeeper.console.release_view import (
    PasskeyChoice,
    ReleasePage,
    page_model,
    passkey_choices,
)
from gatekeeper.dossier.collect import collect_dossier, journal_source
from gatekeeper.dossier.render import to_json
from gatekeeper.dossier.verify import Checks, Verification, verify_text
from gatekeeper.errors import GatekeeperError, InputError, ReleaseNotFound
from gatekeeper.identity.keys import KeyRecord
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.signer import load_private_key
from gatekeeper.statements import (
    Binding,
    SsoClaims,
    b64url,
    challenge,
    gateway_signed,
    new_nonce,
    statement,
    timestamp,
    webauthn_signed,
)

router = APIRouter()

#: A release id as the engine spells it (anything else is not a release: 404, nothing asked).
RELEASE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: The largest JSON body ``prepare`` reads.
MAX_PREPARE_BYTES = 64 * 1024
#: Said when a decision arrives without a passkey's assertion.
UNSIGNED = (
    "refused: a decision in the console is signed with your passkey; nothing was sent "
    "(is JavaScript on? register a passkey on the Passkeys page)"
)
NO_PASSKEY = (
    "refused: you have no active passkey; register one on the Passkeys page (an identity admin "
    "approves it), then sign"
)


def _release_id(release_id: str) -> str:
    if not RELEASE_ID.fullmatch(release_id):
        raise Refused(f"no release {release_id[:64]!r}", 404)
    return release_id


# --- the release's own policy ----------------------------------------------------------------------


#: Policies by their sha256 (a recorded policy never changes), read once per console process.
_POLICIES: dict[str, Policy] = {}
#: How many policies the console remembers.
MAX_POLICIES = 64


async def release_policy(ctx: ConsoleContext, status: ReleaseStatus) -> Policy:
    """The policy the release runs under: the installed version it names, checked against the
    sha256 the release recorded (else the snapshot its history holds)."""
    cached = _POLICIES.get(status.policy_sha256)
    if cached is not None:
        return cached
    ref = f"{status.policy_id}@{status.policy_version}"
    policy = await asyncio.to_thread(_installed, ctx, ref, status.policy_sha256)
    if policy is None:
        policy = await _from_history(ctx, status.release_id)
    if policy is None:
        raise Refused(f"the policy {ref} of release {status.release_id} is not installed here", 500)
    if len(_POLICIES) >= MAX_POLICIES:
        _POLICIES.clear()
    _POLICIES[status.policy_sha256] = policy
    return policy


def _installed(ctx: ConsoleContext, ref: str, sha256: str) -> Policy | None:
    from gatekeeper.adapters.policy_store import PolicyStore

    try:
        with PolicyStore(ctx.settings.gatekeeper.effective_registry_url) as store:
            installed = store.get(ref)
    except GatekeeperError:
        return None
    return installed.policy if installed.sha256 == sha256 else None


async def _from_history(ctx: ConsoleContext, release_id: str) -> Policy | None:
    from gatekeeper.dossier.collect import _installed_policy

    handle = ctx.releases.handle(release_id)
    history = await handle.fetch_history()
    installed = await _installed_policy(history.events, ctx.releases.client.data_converter)
    return installed.policy if installed is not None else None


# --- keys ------------------------------------------------------------------------------------------


def gateway_key(ctx: ConsoleContext) -> Ed25519PrivateKey | None:
    """The console's gateway key (``[console] gateway_key``), or None."""
    path = ctx.settings.config.gateway_key
    if path is None:
        return None
    return load_private_key(path)


# --- the page ------------------------------------------------------------------------------------


async def load_page(
    ctx: ConsoleContext, release_id: str, person: SignedInPerson
) -> tuple[ReleasePage, Policy]:
    try:
        status, audit = await asyncio.gather(
            ctx.releases.status(release_id), ctx.releases.audit(release_id)
        )
    except ReleaseNotFound as err:
        raise Refused(str(err), 404) from err
    policy = await release_policy(ctx, status)
    has_gateway = ctx.settings.config.gateway_key is not None
    page = await asyncio.to_thread(
        lambda: page_model(
            status,
            audit,
            policy,
            person.id,
            datetime.now(UTC),
            directory=ctx.identity(),
            gateway=has_gateway and not person.dev,
            passkeys=_passkeys(ctx, person.id),
        )
    )
    return page, policy


def _passkeys(ctx: ConsoleContext, person: str) -> tuple[PasskeyChoice, ...]:
    """``person``'s active passkeys, newest first, with their registration labels."""
    registry = ctx.identity()
    labels = {
        e.key_id: e.label for e in registry.passkey_enrollments(person) if e.state == "approved"
    }
    return passkey_choices(registry.passkeys(person), labels)


def _render(
    ctx: ConsoleContext,
    request: Request,
    page: ReleasePage,
    person: SignedInPerson,
    *,
    verification: Verification | None = None,
) -> Response:
    return ctx.render(
        request,
        "release.html",
        {
            "page": page,
            "v": page.v,
            "verification": verification,
        },
        person=person,
    )


@router.get("/releases/{release_id}")
async def release(
    request: Request, release_id: str, person: SignedInPerson = Depends(current_person)
) -> Response:
    ctx = context(request)
    page, _ = await load_page(ctx, _release_id(release_id), person)
    return _render(ctx, request, page, person)


# --- prepare and act -------------------------------------------------------------------------------


def parse_binding(seen: Any, release_id: str) -> Binding:
    """The binding the page showed (its ``seen`` field: the binding's JSON)."""
    if not isinstance(seen, str) or len(seen) > 16_000:
        raise InputError("refused: the form does not carry what the page showed; reload the page")
    try:
        binding = Binding.model_validate_json(seen)
    except ValidationError:
        raise InputError(
            "refused: the form does not carry what the page showed; reload the page"
        ) from None
    if binding.subject_id != release_id:
        raise InputError(f"refused: the form was shown for {binding.subject_id}, not {release_id}")
    return binding


def form_fields(action: str, form: Mapping[str, Any] | FormData) -> dict[str, str | list[str]]:
    """The fields of ``action``'s form (and only those), from a posted form or prepare's JSON."""
    fields: dict[str, str | list[str]] = {}
    for name in FIELDS.get(action, ()):
        if isinstance(form, FormData):
            values = [v for v in form.getlist(name) if isinstance(v, str)]
            fields[name] = values if name in MULTI_FIELDS else (values[0] if values else "")
            continue
        value = form.get(name, [] if name in MULTI_FIELDS else "")
        if name in MULTI_FIELDS:
            fields[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        else:
            fields[name] = value if isinstance(value, str) else ""
    return fields


@dataclass(frozen=True)
class Prepared:
    """What a decision is, before its signature: the request, what it binds, who may send it."""

    action: str
    request: dict[str, Any]
    binding: Binding
    policy: Policy
    status: ReleaseStatus


async def _prepared(
    ctx: ConsoleContext,
    person: SignedInPerson,
    release_id: str,
    action: str,
    fields: Mapping[str, str | list[str]],
    seen: Any,
) -> Prepared:
    """The request ``person`` would send, or ``Refused`` (nothing is sent) when the page would
    not offer them the form now, or the fields make no valid request."""
    if action not in FIELDS:
        raise Refused(f"refused: unknown action {action[:64]!r}", 400)
    try:
        status = await ctx.releases.status(release_id)
    except ReleaseNotFound as err:
        raise Refused(str(err), 404) from err
    policy = await release_policy(ctx, status)
    has_gateway = ctx.settings.config.gateway_key is not None
    forms = forms_for(policy, status, person.id, datetime.now(UTC), gateway=has_gateway)
    if form_named(forms, action) is None:  # before reading anything else the POST carries
        raise Refused(f"refused: you may not {DOING[action]} now", 403)
    try:
        binding = parse_binding(seen, release_id)
        request = build_request(action, person.id, binding.stage, fields)
    except InputError as err:
        raise Refused(str(err), 400) from err
    why = refusal(forms, action, request)
    if why is not None:
        raise Refused(why, 403)
    return Prepared(action, request, binding, policy, status)


def chosen_passkey(ctx: ConsoleContext, person: str, chosen: Any) -> KeyRecord:
    """The passkey ``person`` chose on the form (a key id), or without a choice their newest.

    Raises:
        Refused: they have no active passkey; the choice is not one of their active passkeys.
    """
    keys = ctx.identity().passkeys(person)
    if not keys:
        raise Refused(NO_PASSKEY, 409)
    if chosen is None or chosen == "":
        return max(keys, key=lambda k: (k.valid_from, k.key_id))
    found = next((k for k in keys if isinstance(chosen, str) and k.key_id == chosen), None)
    if found is None:
        shown = chosen[:80] if isinstance(chosen, str) else type(chosen).__name__
        raise Refused(
            f"refused: {shown!r} is not one of your active passkeys; choose one of yours on the "
            "form (reload the page)",
            400,
        )
    return found


@router.post("/releases/{release_id}/prepare")
async def prepare(
    request: Request, release_id: str, person: SignedInPerson = Depends(current_person)
) -> Response:
    """The WebAuthn challenge of the request the form will send (JSON in, JSON out)."""
    check_csrf(request)
    ctx = context(request)
    release_id = _release_id(release_id)
    raw = await request.body()
    if len(raw) > MAX_PREPARE_BYTES:
        raise Refused("refused: the request is too large", 413)
    try:
        body = json.loads(raw)
    except ValueError:
        raise Refused("refused: prepare takes a JSON object", 400) from None
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise Refused("refused: prepare takes {action, fields, seen, key_id}", 400)
    action = body["action"]
    raw_fields = body.get("fields")
    fields = form_fields(action, raw_fields if isinstance(raw_fields, dict) else {})
    prepared = await _prepared(ctx, person, release_id, action, fields, body.get("seen"))
    key = await asyncio.to_thread(chosen_passkey, ctx, person.id, body.get("key_id"))
    if key.credential_id is None:
        raise Refused(NO_PASSKEY, 409)
    signed_at = datetime.now(UTC)
    nonce = new_nonce()
    fields_of_statement = {
        "action": action,
        "actor": person.id,
        "request": prepared.request,
        "binding": prepared.binding,
        "key_id": key.key_id,
        "signed_at": signed_at,
        "nonce": nonce,
    }
    return JSONResponse(
        {
            "challenge": b64url(challenge(**fields_of_statement)),
            "key_id": key.key_id,
            "signed_at": timestamp(signed_at),
            "nonce": nonce,
            "allow_credentials": [key.credential_id],
            "rp_id": ctx.settings.rp_id,
            "statement": statement(**fields_of_statement),
        }
    )


def _flash(request: Request, text: str) -> None:
    request.session["flash"] = text[:1000]


def _back(release_id: str) -> RedirectResponse:
    return RedirectResponse(f"/releases/{release_id}", status_code=303)


def _one(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _signed(
    ctx: ConsoleContext, person: SignedInPerson, prepared: Prepared, form: FormData
) -> dict[str, Any]:
    """The prepared request with its signature: the passkey's assertion the form carries, or
    (mode ``gateway``) the console's attestation of the sign-in. Raises ``Refused`` when it
    cannot be signed (nothing is sent)."""
    action = prepared.action
    if _one(form, "mode") == "gateway":
        key = gateway_key(ctx)
        if key is None:
            raise Refused("refused: this console has no gateway key; sign with your passkey", 400)
        if action not in gateway_actions(prepared.policy):
            policy = prepared.policy
            raise Refused(
                f"the policy {policy.policy_id}@{policy.version} does not accept "
                f"gateway-attested {action}; sign with your passkey or CLI key",
                400,
            )
        if person.dev:
            raise Refused(
                "refused: a development sign-in attests no identity; sign with your passkey", 400
            )
        claims = SsoClaims(issuer=person.issuer, subject=person.subject, auth_time=person.auth_time)
        return gateway_signed(
            key,
            prepared.request,
            action=action,
            actor=person.id,
            binding=prepared.binding,
            sso=claims,
        )
    names = ("signed_at", "nonce", "key_id", "authenticator_data", "client_data_json", "signature")
    values = {name: _one(form, name) for name in names}
    if not all(values.values()):
        raise Refused(UNSIGNED, 400)
    try:
        signed_at = datetime.fromisoformat(values["signed_at"].replace("Z", "+00:00"))
        if signed_at.tzinfo is None:
            raise ValueError("naive")
        return webauthn_signed(
            prepared.request,
            action=action,
            actor=person.id,
            binding=prepared.binding,
            key_id=values["key_id"],
            signed_at=signed_at,
            nonce=values["nonce"],
            authenticator_data=values["authenticator_data"],
            client_data_json=values["client_data_json"],
            signature=values["signature"],
        )
    except (ValueError, ValidationError):
        raise Refused(
            "refused: the passkey's assertion is malformed; nothing was sent", 400
        ) from None


@router.post("/releases/{release_id}/act")
async def act(
    request: Request, release_id: str, person: SignedInPerson = Depends(current_person)
) -> Response:
    """Send one signed decision; back to the page with the worker's one-line answer."""
    form = await checked_form(request)
    ctx = context(request)
    release_id = _release_id(release_id)
    action = _one(form, "action")
    try:
        prepared = await _prepared(
            ctx, person, release_id, action, form_fields(action, form), form.get("seen")
        )
        signed = _signed(ctx, person, prepared, form)
    except Refused as refused:
        if refused.status_code != 400:
            raise  # a form the page does not offer this person: refused outright, not a flash
        _flash(request, refused.message)
        return _back(release_id)
    try:
        result = await ctx.releases.send_signed(release_id, action, signed)
    except GatekeeperError as err:
        _flash(request, str(err))
    else:
        _flash(request, result.message)
    return _back(release_id)


# --- verify and the dossier ------------------------------------------------------------------------


def _anchor_reader(ctx: ConsoleContext) -> tuple[Any, Any]:
    from gatekeeper.adapters.anchors import AnchorStore

    store = AnchorStore(ctx.settings.gatekeeper.effective_registry_url)
    return store, store.anchors


def _audit_reader(ctx: ConsoleContext) -> Any:
    from gatekeeper.adapters.audit_store import DatabaseAuditStore

    return DatabaseAuditStore(ctx.settings.gatekeeper.effective_registry_url)


def _delivery_reader(ctx: ConsoleContext) -> Any:
    from gatekeeper.adapters.deliveries import DeliveryStore

    return DeliveryStore(ctx.settings.gatekeeper.effective_registry_url)


async def dossier_json(ctx: ConsoleContext, release_id: str) -> str:
    """The release's JSON dossier as ``gatekeeper audit export --format json`` writes it."""
    registry = await asyncio.to_thread(ctx.identity)
    store, anchors = await asyncio.to_thread(_anchor_reader, ctx)
    try:
        journal = await asyncio.to_thread(_delivery_reader, ctx)
    except BaseException:
        store.close()
        raise
    try:
        chains = await asyncio.to_thread(_audit_reader, ctx)
    except BaseException:
        store.close()
        journal.close()
        raise
    try:
        dossier = await collect_dossier(
            ctx.releases,
            release_id,
            deliveries=journal.lines,
            deliveries_source=journal_source(journal.url),
            key_chain=registry.chain_to_root,
            sso_proof=registry.sso_link_entries,
            anchors=anchors,
            anchors_source=store.url,
            audit_events=chains.read,
        )
    except ReleaseNotFound as err:
        raise Refused(str(err), 404) from err
    finally:
        store.close()
        journal.close()
        chains.close()
    return to_json(dossier)


def trust_root(ctx: ConsoleContext) -> str | None:
    """The pinned root (``[identity] trust_root``), else the registry's own root."""
    pinned = ctx.settings.gatekeeper.config.identity.trust_root
    if pinned is not None:
        return pinned
    root = ctx.identity().root()
    return root.key_id if root is not None else None


@router.post("/releases/{release_id}/verify")
async def verify(
    request: Request, release_id: str, person: SignedInPerson = Depends(current_person)
) -> Response:
    """Re-verify the release's audit chain and every signature, as ``audit verify`` does."""
    await checked_form(request)
    ctx = context(request)
    release_id = _release_id(release_id)
    text = await dossier_json(ctx, release_id)
    root = await asyncio.to_thread(trust_root, ctx)
    verification = await asyncio.to_thread(
        verify_text, text, source=f"release {release_id}", checks=Checks(trust_root=root)
    )
    page, _ = await load_page(ctx, release_id, person)
    return _render(ctx, request, page, person, verification=verification)


@router.get("/releases/{release_id}/dossier")
async def dossier(
    request: Request, release_id: str, person: SignedInPerson = Depends(current_person)
) -> Response:
    del person
    ctx = context(request)
    release_id = _release_id(release_id)
    text = await dossier_json(ctx, release_id)
    return Response(
        text,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="dossier-{release_id}.json"'},
    )

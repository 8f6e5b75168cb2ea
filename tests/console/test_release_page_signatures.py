"""The release page's "verifies" mark is ``audit verify``'s check of each decision's signature,
run against the identity registry (gatekeeper.dossier.signatures.AttestationCheck), plus the
worker's policy check of a gateway's attestation.

The accepted decisions come from the real worker; the ones that must not verify are the real
audit event with another attestation in it (what a rewritten history or a registry changed
behind the worker's back would show), checked with the worker's real identity registry.
"""

from __future__ import annotations

import asyncio
import html
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.console.release_view import SignatureChecks, signature_state
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models import Policy
from gatekeeper.models.audit import AuditEvent
from gatekeeper.signed_requests import attestation, release_binding
from gatekeeper.statements import SsoClaims, gateway_signed, public_key_b64
from tests import factories, signing
from tests.console import test_release_page_passkeys as passkeys
from tests.console.conftest import Console
from tests.console.test_release_page import act, seen_on
from tests.console.test_release_page_passkeys import ISSUER, authenticator, oidc_session_cookie
from tests.identity_fixtures import admin_key, read_key
from tests.workflows.conftest import Harness

#: The console with a registered gateway key, sam.safety's identity linked, a gateway policy.
gateway_setup = passkeys.gateway_setup

MARKS = re.compile(r'data-testid="signature-verified">([^<]*)<')
NOTES = re.compile(r'data-testid="signature-note">([^<]*)<')


def marks_on(page: str) -> list[str]:
    return [html.unescape(m) for m in MARKS.findall(page)]


def admin_of(harness: Harness) -> Ed25519PrivateKey:
    registry = harness.adapters.identity
    return admin_key(registry, harness.adapters.worker_key_path.parent / "admin-keys")  # type: ignore[union-attr]


async def approved_by_gateway(console: Console, harness: Harness, policy: Policy) -> str:
    """A release sam.safety approved through the console's gateway attestation; its id."""
    status = await harness.start(policy=policy)
    rid = status.release_id
    console.http.cookies.set("gk_session", oidc_session_cookie("sam.safety", "sub-sam"))
    page = (await console.get(f"/releases/{rid}")).text
    line = await act(
        console,
        rid,
        {"action": "approve", "role": "safety", "seen": seen_on(page), "mode": "gateway"},
    )
    assert line.startswith("sam.safety approved internal_review as safety"), line
    return rid


async def decision_event(harness: Harness, release_id: str) -> AuditEvent:
    audit = await harness.releases.audit(release_id)
    return next(e for e in audit if e.action.startswith("decision_"))


def with_attestation(event: AuditEvent, signed: dict[str, Any], action: str) -> AuditEvent:
    """``event`` recording ``signed`` (a signed request) instead of what it recorded."""
    recorded = attestation(action, signed)
    assert recorded is not None
    return event.model_copy(update={"details": {**event.details, "attestation": recorded}})


async def gateway_attested(
    harness: Harness, release_id: str, key: Ed25519PrivateKey, *, subject: str = "sub-sam"
) -> dict[str, Any]:
    """sam.safety's approval of ``release_id`` attested by ``key`` as a gateway, signed now."""
    status = await harness.releases.status(release_id)
    return gateway_signed(
        key,
        {"decider": "sam.safety", "role": "safety", "comment": ""},
        action="approve",
        actor="sam.safety",
        binding=release_binding(status),
        sso=SsoClaims(issuer=ISSUER, subject=subject, auth_time=datetime.now(UTC)),
    )


class TestGatewayMark:
    """A gateway's attestation verifies only by a registered gateway's key, for an identity
    linked to the actor when the gateway signed, under a policy that accepts it for the action."""

    async def test_a_link_removed_after_signing_still_verifies_and_says_so(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        """As ``audit verify`` does: the link in force when the gateway signed counts; the page
        adds that the identity is not linked now. The verify button agrees."""
        console, policy = gateway_setup
        rid = await approved_by_gateway(console, harness, policy)
        assert marks_on((await console.get(f"/releases/{rid}")).text) == ["✓ verifies"]
        registry: IdentityRegistry = harness.adapters.identity
        admin = admin_of(harness)
        await asyncio.to_thread(
            lambda: registry.unlink_sso(
                "sam.safety", issuer=ISSUER, subject="sub-sam", admin_key=admin
            )
        )
        page = (await console.get(f"/releases/{rid}")).text
        assert marks_on(page) == ["✓ verifies"]
        assert [html.unescape(n) for n in NOTES.findall(page)] == [
            f"{ISSUER} sub-sam was linked to sam.safety when signed; it is not linked now"
        ]
        token = await console.csrf(f"/releases/{rid}")
        verified = await console.post(f"/releases/{rid}/verify", data={"csrf_token": token})
        result = re.search(r'data-testid="verify-result"[^>]*>([^<]*)<', verified.text)
        assert result and html.unescape(result.group(1)).startswith("verified: ok: ")

        # Attested after the link was removed: does not verify.
        key = read_key(Path(str(console.settings.config.gateway_key)))
        event = with_attestation(
            await decision_event(harness, rid),
            await gateway_attested(harness, rid, key),
            "approve",
        )
        state = await asyncio.to_thread(signature_state, event, SignatureChecks(registry, policy))
        assert (state.kind, state.verified) == ("gateway", False)
        assert state.why == (
            f"the identity registry does not show {ISSUER} sub-sam linked to sam.safety when "
            "the gateway signed"
        )

    async def test_a_key_that_is_not_a_gateway_does_not_verify(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        console, policy = gateway_setup
        rid = await approved_by_gateway(console, harness, policy)
        registry: IdentityRegistry = harness.adapters.identity
        own = signing.person_key("sam.safety")
        if await asyncio.to_thread(registry.key, signing.key_id(own)) is None:
            admin = admin_of(harness)
            await asyncio.to_thread(
                lambda: registry.register(
                    principal="sam.safety", public_key=public_key_b64(own), admin_key=admin
                )
            )
        event = with_attestation(
            await decision_event(harness, rid),
            await gateway_attested(harness, rid, own),
            "approve",
        )
        state = await asyncio.to_thread(signature_state, event, SignatureChecks(registry, policy))
        assert state.verified is False
        assert state.why == "attested by sam.safety, which is not a registered gateway"
        # The real event, checked the same way, verifies.
        real = await asyncio.to_thread(
            signature_state, await decision_event(harness, rid), SignatureChecks(registry, policy)
        )
        assert (real.verified, real.why) == (True, "")

    async def test_a_policy_that_does_not_accept_gateways_does_not_verify(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        console, policy = gateway_setup
        rid = await approved_by_gateway(console, harness, policy)
        strict = factories.policy(version="strict")
        state = await asyncio.to_thread(
            signature_state,
            await decision_event(harness, rid),
            SignatureChecks(harness.adapters.identity, strict),
        )
        assert state.verified is False
        assert state.why == (
            f"the policy {strict.policy_id}@strict does not accept gateway-attested approve; "
            "sign with your passkey or CLI key"
        )


class TestPasskeyMark:
    """A passkey's attestation verifies only with a passkey of the decision's actor."""

    async def test_someone_elses_passkey_does_not_verify(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        console, policy = gateway_setup
        rid = await approved_by_gateway(console, harness, policy)
        registry: IdentityRegistry = harness.adapters.identity
        lenas = authenticator(f"lena-other-{rid}")
        admin = admin_of(harness)
        await asyncio.to_thread(lenas.register, registry, "lena.fischer", admin)
        status = await harness.releases.status(rid)
        signed = lenas.sign(
            {"decider": "sam.safety", "role": "safety", "comment": ""},
            action="approve",
            actor="sam.safety",
            binding=release_binding(status),
        )
        event = with_attestation(await decision_event(harness, rid), signed, "approve")
        state = await asyncio.to_thread(signature_state, event, SignatureChecks(registry, policy))
        assert (state.kind, state.label, state.verified) == ("webauthn", "passkey", False)
        assert state.why == "signed with a key of lena.fischer, not of sam.safety"

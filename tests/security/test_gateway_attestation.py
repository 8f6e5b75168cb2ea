"""A gateway (the web console) attests a single sign-on identity only where the policy says so.

A gateway-attested request carries the console's Ed25519 signature over the statement with the
OIDC identity (issuer, subject, auth time) added. The worker accepts it only when the release's
policy lists the update in ``gateway_attestation``, the signing key is registered as a gateway
(not a person's, not unknown), and an identity admin linked that identity to the request's actor.
Each attack is sent as raw JSON through a Temporal client (some through the stock ``temporal``
CLI), as a compromised console would; each is refused in the validator in one line and changes
nothing. The honest gateway-attested request is then accepted.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.models.orders import OrderSpec
from gatekeeper.signed_requests import order_binding, release_binding
from gatekeeper.statements import SsoClaims, gateway_signed
from tests import factories, signing
from tests.orders.conftest import OrderHarness, orders, unique
from tests.security.test_signatures import (
    Target,
    admin,
    raw_client,
    refused_unchanged,
    temporal_cli,
)

__all__ = ["orders"]  # the fixture

ISSUER = "https://sso.example.com"
SAM = "sam.safety"
OPERATOR = factories.OPERATOR
APPROVAL = {"decider": SAM, "role": "safety", "comment": "evals look right"}


def gateway(h: OrderHarness, name: str = "console") -> Ed25519PrivateKey:
    """A key registered as a gateway (what `gatekeeper keys gateway register` does)."""
    key = Ed25519PrivateKey.generate()
    h.adapters.identity.register(
        principal=name,
        principal_kind=signing.PrincipalKind.GATEWAY,
        public_key=signing.public_key_b64(key),
        admin_key=admin(h),
    )
    return key


def link(h: OrderHarness, person: str, subject: str) -> None:
    h.adapters.identity.link_sso(person, issuer=ISSUER, subject=subject, admin_key=admin(h))


def claims(subject: str, **over: Any) -> SsoClaims:
    return SsoClaims(
        issuer=over.get("issuer", ISSUER),
        subject=subject,
        auth_time=over.get("auth_time", datetime.now(UTC) - timedelta(minutes=2)),
        email=over.get("email"),
    )


async def target_under(h: OrderHarness, allowed: list[str]) -> Target:
    """A release at internal review under a policy with ``gateway_attestation: allowed``."""
    policy = factories.policy(gateway_attestation=allowed)
    status = await h.start(factories.spec(f"r-gw-{uuid.uuid4().hex[:8]}"), policy)
    rid = status.release_id
    await h.at_stage(rid, "internal_review")

    async def binding() -> Any:
        return release_binding(await h.releases.status(rid))

    async def snapshot() -> Any:
        status = await h.releases.status(rid)
        return status.status_version, status.audit_length, status.model_dump(exclude={"updated_at"})

    return Target(h.handle(rid), "approve", dict(APPROVAL), binding, binding, snapshot)


async def attested(
    target: Target,
    key: Ed25519PrivateKey,
    subject: str,
    *,
    update: str | None = None,
    body: dict[str, Any] | None = None,
    actor: str = SAM,
    **over: Any,
) -> dict[str, Any]:
    return gateway_signed(
        key,
        body if body is not None else target.body,
        action=update or target.update,
        actor=actor,
        binding=await target.binding(),
        sso=claims(subject, **over),
    )


async def accepted(target: Target, key: Ed25519PrivateKey, subject: str) -> None:
    body = await attested(target, key, subject)
    await target.handle.execute_update(target.update, body, result_type=dict)


class TestThePolicyDecides:
    """Without ``gateway_attestation`` listing the update (or ``*``), a gateway's attestation
    is refused, however genuine; the one-line refusal names the policy."""

    async def test_a_policy_without_it(self, orders: OrderHarness) -> None:
        target = await target_under(orders, [])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        body = await attested(target, console, "u-1")

        await refused_unchanged(target, body, "signature_gateway_not_allowed", raw_client(target))
        message = await raw_client(target)(body)
        assert re.fullmatch(
            r"signature_gateway_not_allowed: the policy test-policy@1\S* does not accept "
            r"gateway-attested approve; sign with your passkey or CLI key",
            message,
        ), message

    async def test_a_policy_listing_other_updates(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["reject", "request_changes"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        body = await attested(target, console, "u-1")

        await refused_unchanged(target, body, "signature_gateway_not_allowed", raw_client(target))

    async def test_through_the_temporal_cli(self, orders: OrderHarness) -> None:
        target = await target_under(orders, [])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        body = await attested(target, console, "u-1")

        await refused_unchanged(
            target, body, "signature_gateway_not_allowed", temporal_cli(orders, target)
        )

    async def test_a_wildcard_allows_it(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["*"])
        console = gateway(orders)
        link(orders, SAM, "u-1")

        await accepted(target, console, "u-1")

    async def test_access_order_updates_never(self, orders: OrderHarness) -> None:
        """An order's exempt or lift is never gateway-attested, whatever a policy says."""
        console = gateway(orders)
        link(orders, OPERATOR, "u-ops")
        order_id = unique("gw")
        await orders.orders.apply(
            OrderSpec(
                order_id=order_id,
                models=[unique("m")],
                scope="foreign_persons",
                reason="export control",
            ),
            OPERATOR,
        )
        handle = orders.orders.handle(order_id)
        first_run = (await orders.orders.status(order_id)).first_run_id

        async def binding() -> Any:
            return order_binding(order_id, first_run)

        async def snapshot() -> Any:
            return (await orders.orders.status(order_id)).model_dump()

        target = Target(
            handle, "lift", {"by": OPERATOR, "reason": "ended"}, binding, binding, snapshot
        )
        body = await attested(target, console, "u-ops", actor=OPERATOR)

        await refused_unchanged(target, body, "signature_gateway_not_allowed", raw_client(target))
        assert "never gateway-attested" in await raw_client(target)(body)


class TestTheIdentity:
    """The attested single sign-on identity must be linked, by an identity admin, to the
    request's actor."""

    async def test_an_identity_linked_to_someone_else(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, "sara.safety", "u-sara")
        body = await attested(target, console, "u-sara")

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))
        assert f"{ISSUER} u-sara is linked to sara.safety, not to {SAM}" in await raw_client(
            target
        )(body)

    async def test_an_identity_linked_to_no_one(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        body = await attested(target, console, "u-nobody")

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))
        assert "is not linked to anyone" in await raw_client(target)(body)

    async def test_the_same_subject_at_another_issuer(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        body = await attested(target, console, "u-1", issuer="https://evil-idp.example")

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))

    async def test_an_unlinked_identity(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        orders.adapters.identity.unlink_sso(
            SAM, issuer=ISSUER, subject="u-1", admin_key=admin(orders)
        )
        body = await attested(target, console, "u-1")

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))

    async def test_claims_changed_after_signing(self, orders: OrderHarness) -> None:
        """The console's signature covers the claims: swapping the subject for another linked
        one breaks it."""
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        link(orders, "sara.safety", "u-sara")
        body = await attested(
            target,
            console,
            "u-sara",
            body={**APPROVAL, "decider": "sara.safety"},
            actor="sara.safety",
        )
        body = {**body, "decider": SAM}
        body["signature"] = {**body["signature"], "sso": {**body["signature"]["sso"]}}
        body["signature"]["sso"]["subject"] = "u-1"

        await refused_unchanged(target, body, "signature_invalid", raw_client(target))


class TestTheGatewayKey:
    """Only a key registered as a gateway attests: not an unknown key, not a person's key."""

    async def test_an_unregistered_gateway_key(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        link(orders, SAM, "u-1")
        body = await attested(target, Ed25519PrivateKey.generate(), "u-1")

        await refused_unchanged(target, body, "signature_unknown_key", raw_client(target))

    async def test_a_persons_key_as_a_gateway(self, orders: OrderHarness) -> None:
        """sam.safety's own CLI key cannot attest his single sign-on: it is not a gateway's."""
        target = await target_under(orders, ["approve"])
        link(orders, SAM, "u-1")
        body = await attested(target, signing.person_key(SAM), "u-1")

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))
        assert "a person, not a registered gateway" in await raw_client(target)(body)

    async def test_a_revoked_gateway_key(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        orders.adapters.identity.revoke(
            signing.key_id(console), reason="console rebuilt", admin_key=admin(orders)
        )
        body = await attested(target, console, "u-1")

        await refused_unchanged(target, body, "signature_key_not_valid", raw_client(target))

    async def test_the_gateway_key_as_a_persons_key(self, orders: OrderHarness) -> None:
        """The console's key signing a plain request (kind ``key``) for a person is refused."""
        from gatekeeper.statements import sign_request

        target = await target_under(orders, ["*"])
        console = gateway(orders)
        body = sign_request(
            console, action="approve", actor=SAM, request=APPROVAL, binding=await target.binding()
        )

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))
        assert "belongs to console, not to sam.safety" in await raw_client(target)(body)

    @pytest.mark.parametrize("minutes", [10])
    async def test_a_sign_in_after_the_signature(self, orders: OrderHarness, minutes: int) -> None:
        target = await target_under(orders, ["approve"])
        console = gateway(orders)
        link(orders, SAM, "u-1")
        body = await attested(
            target, console, "u-1", auth_time=datetime.now(UTC) + timedelta(minutes=minutes)
        )

        await refused_unchanged(target, body, "signature_invalid", raw_client(target))


class TestAccepted:
    """Where the policy allows it, a gateway attesting the actor's linked identity is accepted
    and recorded as such in the audit trail."""

    async def test_accepted_and_recorded(self, orders: OrderHarness) -> None:
        target = await target_under(orders, ["approve", "reject", "request_changes"])
        console = gateway(orders)
        link(orders, SAM, "u-1")

        await accepted(target, console, "u-1")

        audit = await orders.releases.audit(target.handle.id.removeprefix("release-"))
        [attestation] = [e.details["attestation"] for e in audit if "attestation" in e.details]
        assert attestation["kind"] == "gateway"
        assert attestation["statement"]["sso"]["subject"] == "u-1"
        assert attestation["statement"]["key_id"] == signing.key_id(console)

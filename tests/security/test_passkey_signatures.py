"""Decisions signed with a passkey (WebAuthn, ES256) count only as the statement they sign.

The console asks the browser to sign the sha256 of the same canonical statement a CLI key signs
(``statements.challenge``); the worker recomputes that challenge from its own binding and checks
the assertion against the passkey an identity admin approved: client data type, challenge and
origin, the relying party's hash, the user-present and user-verified flags, and the ECDSA
signature. Each attack here is sent as raw JSON through a Temporal client (and some through the
stock ``temporal`` CLI), as a compromised console would send it; each is refused in the update's
validator in one line, the release is unchanged and its history holds no new update. The same
request, signed honestly, is then accepted. A passkey-signed approval's dossier verifies offline
with ``gatekeeper audit verify`` and names the kind of each decision; a forger who edits the
stored assertion and recomputes every hash is found.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.identity.keys import PendingPasskey
from gatekeeper.signed_requests import release_binding
from gatekeeper.statements import SsoClaims, gateway_signed, sign_request
from tests import factories, signing
from tests.orders.conftest import OrderHarness, orders
from tests.security.process import environment, gatekeeper
from tests.security.test_signatures import (
    Target,
    admin,
    raw_client,
    refused_unchanged,
    release_target,
    send,
    temporal_cli,
)
from tests.test_dossier_signatures import rehash
from tests.webauthn_soft import UP, UV, SoftAuthenticator

__all__ = ["orders"]  # the fixture

SAM = "sam.safety"
OPERATOR = factories.OPERATOR
APPROVAL = {"decider": SAM, "role": "safety", "comment": "evals look right"}


def passkey(h: OrderHarness, person: str = SAM) -> SoftAuthenticator:
    """A passkey of ``person``, enrolled and approved by the identity admin."""
    soft = SoftAuthenticator()
    soft.register(h.adapters.identity, person, admin(h))
    return soft


async def approval_target(h: OrderHarness) -> Target:
    """A release at internal review (and another), where sam.safety's approval is accepted."""
    target = await release_target(h, "approve")
    return Target(
        target.handle,
        "approve",
        dict(APPROVAL),
        target.binding,
        target.other,
        target.snapshot,
    )


def signed_by(soft: SoftAuthenticator, target: Target, binding: Any, **over: Any) -> dict[str, Any]:
    body = over.pop("body", target.body)
    return soft.sign(body, action=target.update, actor=body["decider"], binding=binding, **over)


class TestAssertionsOverAnotherStatement:
    """An assertion counts only for the statement it signed: a changed comment, another release,
    another stage or other evidence is refused (the challenge differs), changing nothing."""

    async def test_each_is_refused_and_the_honest_one_is_accepted(
        self, orders: OrderHarness, subtests: Any
    ) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        binding = await target.binding()
        other = await target.other()
        evidence = dict(binding.evidence)
        evidence[sorted(evidence)[0]] = "0" * 64
        attacks: dict[str, dict[str, Any]] = {
            "changed comment": {
                **signed_by(soft, target, binding),
                "comment": "changed after signing",
            },
            "other release": signed_by(soft, target, binding, challenge_for={"binding": other}),
            "other stage": signed_by(
                soft,
                target,
                binding,
                challenge_for={"binding": binding.model_copy(update={"stage": "launch_approval"})},
            ),
            "changed evidence": signed_by(
                soft,
                target,
                binding,
                challenge_for={"binding": binding.model_copy(update={"evidence": evidence})},
            ),
            "other action": signed_by(soft, target, binding, challenge_for={"action": "reject"}),
        }
        for name, body in attacks.items():
            with subtests.test(attack=name):
                await refused_unchanged(
                    target,
                    body,
                    "signature_binding",
                    raw_client(target),
                )
        await target.handle.execute_update(
            "approve", signed_by(soft, target, await target.binding()), result_type=dict
        )

    async def test_the_refusal_names_the_challenge(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        body = {**signed_by(soft, target, await target.binding()), "comment": "changed"}

        message = await raw_client(target)(body)

        assert message == (
            "signature_binding: the passkey assertion is for another statement (challenge "
            "differs); look again and sign"
        )

    async def test_through_the_temporal_cli(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        body = {**signed_by(soft, target, await target.binding()), "comment": "changed"}

        await refused_unchanged(target, body, "signature_binding", temporal_cli(orders, target))


class TestAssertionsMadeElsewhere:
    """An assertion made on another origin, for another relying party, without user
    verification, or of another type is refused in one line, changing nothing."""

    @pytest.mark.parametrize(
        ("assertion", "needle"),
        [
            ({"origin": "https://console.evil.example"}, "was made on https://console.evil"),
            ({"origin": "http://localhost:8401"}, "was made on http://localhost:8401"),
            ({"rp_id": "evil.example"}, "for another relying party than localhost"),
            ({"flags": UP}, "does not show the user verified (UV flag"),
            ({"flags": UV}, "does not show the user present (UP flag)"),
            ({"kind": "webauthn.create"}, "of type 'webauthn.create', not webauthn.get"),
            ({"crossOrigin": True}, "cross-origin frame"),
        ],
        ids=["other origin", "other port", "other rp id", "no UV", "no UP", "create", "iframe"],
    )
    async def test_refused(
        self, orders: OrderHarness, assertion: dict[str, Any], needle: str
    ) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        body = signed_by(soft, target, await target.binding(), **assertion)

        await refused_unchanged(target, body, "signature_invalid", raw_client(target))
        message = await raw_client(target)(body)
        assert needle in message, message
        await target.handle.execute_update(
            "approve", signed_by(soft, target, await target.binding()), result_type=dict
        )

    async def test_a_tampered_signature_is_refused(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        body = signed_by(soft, target, await target.binding())
        der = bytearray(base64.b64decode(body["signature"]["value"]))
        der[-1] ^= 1
        body["signature"]["value"] = base64.b64encode(bytes(der)).decode()

        await refused_unchanged(target, body, "signature_invalid", raw_client(target))
        assert "the passkey signature does not verify" in await raw_client(target)(body)


class TestWhosePasskey:
    """Only the actor's own passkey, approved by an identity admin and not revoked, counts;
    and a signature is used once."""

    async def test_another_persons_passkey(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        sara = passkey(orders, "sara.safety")
        body = signed_by(sara, target, await target.binding())

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))
        assert f"{sara.key_id} belongs to sara.safety, not to {SAM}" in await raw_client(target)(
            body
        )

    async def test_a_pending_passkey(self, orders: OrderHarness) -> None:
        """Enrolled through the console but not approved by an admin: it counts for nothing."""
        target = await approval_target(orders)
        soft = SoftAuthenticator()
        pending = soft.enroll(orders.adapters.identity, SAM)
        assert isinstance(pending, PendingPasskey) and pending.state == "pending"
        body = signed_by(soft, target, await target.binding())

        await refused_unchanged(target, body, "signature_unknown_key", raw_client(target))
        assert f"key {soft.key_id} is not registered" in await raw_client(target)(body)

    async def test_a_rejected_passkey(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        soft = SoftAuthenticator()
        pending = soft.enroll(orders.adapters.identity, SAM)
        orders.adapters.identity.reject_passkey(pending.enrollment_id, admin(orders), "unknown")
        body = signed_by(soft, target, await target.binding())

        await refused_unchanged(target, body, "signature_unknown_key", raw_client(target))

    async def test_a_revoked_passkey(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        soft = passkey(orders)
        orders.adapters.identity.revoke(soft.key_id, reason="lost phone", admin_key=admin(orders))
        body = signed_by(soft, target, await target.binding())

        await refused_unchanged(target, body, "signature_key_not_valid", raw_client(target))
        assert "was revoked at" in await raw_client(target)(body)

    async def test_a_replayed_assertion(self, orders: OrderHarness) -> None:
        """The operator holds with her passkey and resumes; the same hold, sent again (same
        nonce, same assertion) where a hold would be accepted, is refused as a replay."""
        target = await release_target(orders, "hold")
        soft = passkey(orders, OPERATOR)
        body = soft.sign(target.body, action="hold", actor=OPERATOR, binding=await target.binding())
        await target.handle.execute_update("hold", body, result_type=dict)
        await send(
            orders,
            target.handle.id.removeprefix("release-"),
            "resume",
            {"by": OPERATOR, "reason": "clear"},
        )

        await refused_unchanged(target, body, "signature_replayed", raw_client(target))
        assert "already used (replay refused)" in await raw_client(target)(body)

    async def test_a_passkey_signature_passed_off_as_a_cli_key(self, orders: OrderHarness) -> None:
        """The kind is part of what is checked: a passkey's key id with kind ``key`` is refused."""
        target = await approval_target(orders)
        soft = passkey(orders)
        body = signed_by(soft, target, await target.binding())
        signature = dict(body["signature"])
        del signature["webauthn"], signature["kind"]
        signature["value"] = base64.b64encode(b"\1" * 64).decode()

        await refused_unchanged(
            target, {**body, "signature": signature}, "signature_wrong_signer", raw_client(target)
        )

    async def test_a_cli_key_cannot_pose_as_a_passkey(self, orders: OrderHarness) -> None:
        target = await approval_target(orders)
        binding = await target.binding()
        body = sign_request(
            signing.person_key(SAM), action="approve", actor=SAM, request=APPROVAL, binding=binding
        )
        soft = SoftAuthenticator()
        answer = soft.assertion(b"\0" * 32)
        body["signature"] = {
            **body["signature"],
            "kind": "webauthn",
            "webauthn": {
                "authenticator_data": answer["authenticator_data"],
                "client_data_json": answer["client_data_json"],
            },
        }

        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))


# --- the positive path, and the dossier ---------------------------------------------------------

ISSUER = "https://sso.example.com"


def gateway(h: OrderHarness) -> Ed25519PrivateKey:
    """The console's key, registered as a gateway."""
    key = Ed25519PrivateKey.generate()
    h.adapters.identity.register(
        principal="console",
        principal_kind=signing.PrincipalKind.GATEWAY,
        public_key=signing.public_key_b64(key),
        admin_key=admin(h),
    )
    return key


async def three_kinds(h: OrderHarness) -> tuple[str, SoftAuthenticator]:
    """A release whose internal review is passed by a passkey (safety), a gateway attesting
    sec.one's single sign-on (security) and a CLI key (legal)."""
    policy = factories.policy(gateway_attestation=["approve"])
    status = await h.start(factories.spec(f"r-pk-{uuid.uuid4().hex[:8]}"), policy)
    rid = status.release_id
    await h.at_stage(rid, "internal_review")
    soft = passkey(h)
    console = gateway(h)
    h.adapters.identity.link_sso(
        "sec.one", issuer=ISSUER, subject="u-1001", email=None, admin_key=admin(h)
    )
    handle = h.handle(rid)
    binding = release_binding(await h.releases.status(rid))
    await handle.execute_update(
        "approve",
        soft.sign(APPROVAL, action="approve", actor=SAM, binding=binding),
        result_type=dict,
    )
    security = {"decider": "sec.one", "role": "security", "comment": "red team done"}
    claims = SsoClaims(issuer=ISSUER, subject="u-1001", auth_time=datetime.now(UTC))
    await handle.execute_update(
        "approve",
        gateway_signed(
            console, security, action="approve", actor="sec.one", binding=binding, sso=claims
        ),
        result_type=dict,
    )
    await h.approve(rid, "lee.legal", "legal")
    return rid, soft


async def export(h: OrderHarness, rid: str, path: Path) -> dict[str, Any]:
    ran = await gatekeeper(
        "audit", "export", rid, "--format", "json", "--output", str(path), env=environment(h)
    )
    assert ran.code == 0, ran.stderr
    data: dict[str, Any] = json.loads(path.read_text())
    return data


async def verify(h: OrderHarness, path: Path) -> Any:
    root = h.adapters.identity.root()
    assert root is not None
    return await gatekeeper(
        "audit", "verify", str(path), "--trust-root", root.key_id, env=environment(h)
    )


class TestAcceptedAndVerifiedOffline:
    """A passkey-signed and a gateway-attested approval are accepted; the release moves on; its
    dossier verifies offline with `gatekeeper audit verify` and names each decision's kind."""

    async def test_the_release_moves_on_and_the_dossier_verifies(
        self, orders: OrderHarness, tmp_path: Path
    ) -> None:
        rid, soft = await three_kinds(orders)
        await orders.until(rid, lambda s: s.stage != "internal_review", what="review passed")
        path = tmp_path / "dossier.json"

        dossier = await export(orders, rid, path)
        ran = await verify(orders, path)

        assert ran.code == 0, ran.stdout + ran.stderr
        assert ran.stdout.startswith("ok: "), ran.stdout
        assert "signed with " in ran.stdout
        assert "passkey x1" in ran.stdout
        assert f"gateway (SSO {ISSUER} u-1001) x1" in ran.stdout
        assert "CLI key x" in ran.stdout
        kinds = {d["person"]: d["signed_with"] for d in dossier["decisions"]}
        assert kinds == {
            SAM: "passkey",
            "sec.one": f"gateway (SSO {ISSUER} u-1001)",
            "lee.legal": "CLI key",
        }
        [passkey_event] = [
            e
            for e in dossier["audit"]
            if e.get("details", {}).get("attestation", {}).get("kind") == "webauthn"
        ]
        assert passkey_event["details"]["attestation"]["statement"]["key_id"] == soft.key_id
        assert len(dossier["sso_links"]) == 1
        assert any(k["key_id"] == soft.key_id for k in dossier["keys"])
        shown = await gatekeeper("release", "status", rid, env=environment(orders))
        assert shown.code == 0, shown.stderr
        assert "approve ✍ passkey" in shown.stdout, shown.stdout
        assert f"approve ✍ gateway (SSO {ISSUER} u-1001)" in shown.stdout, shown.stdout

    async def test_a_tampered_assertion_is_found(
        self, orders: OrderHarness, tmp_path: Path
    ) -> None:
        """A forger edits the stored client data (the origin) and recomputes every hash."""
        rid, _ = await three_kinds(orders)
        path = tmp_path / "dossier.json"
        dossier = await export(orders, rid, path)
        events = dossier["audit"]
        index = next(
            i
            for i, e in enumerate(events)
            if e.get("details", {}).get("attestation", {}).get("kind") == "webauthn"
        )
        proof = events[index]["details"]["attestation"]["webauthn"]
        client = json.loads(base64.urlsafe_b64decode(proof["client_data_json"] + "=="))
        client["origin"] = "https://console.evil.example"
        proof["client_data_json"] = (
            base64.urlsafe_b64encode(json.dumps(client, separators=(",", ":")).encode())
            .rstrip(b"=")
            .decode()
        )
        dossier["audit"] = rehash(events)
        dossier["audit_head"] = dossier["audit"][-1]["hash"]
        dossier["status"]["audit_head"] = dossier["audit_head"]
        path.write_text(json.dumps(dossier))

        ran = await verify(orders, path)

        assert ran.code == 1, ran.stdout + ran.stderr
        assert f"altered: event #{index}" in ran.stdout, ran.stdout
        assert "was made on https://console.evil.example" in ran.stdout, ran.stdout

    async def test_a_forged_sso_link_is_found(self, orders: OrderHarness, tmp_path: Path) -> None:
        """The dossier's link of the gateway-attested identity is signed by an identity admin:
        naming another person in it breaks the admin's signature."""
        rid, _ = await three_kinds(orders)
        path = tmp_path / "dossier.json"
        dossier = await export(orders, rid, path)
        [link] = dossier["sso_links"]
        link["body"]["sso"]["person"] = "sec.two"
        path.write_text(json.dumps(dossier))

        ran = await verify(orders, path)

        assert ran.code == 1, ran.stdout + ran.stderr
        assert "was edited" in ran.stdout or "does not verify" in ran.stdout, ran.stdout

    async def test_without_the_link_the_gateway_attestation_does_not_verify(
        self, orders: OrderHarness, tmp_path: Path
    ) -> None:
        rid, _ = await three_kinds(orders)
        path = tmp_path / "dossier.json"
        dossier = await export(orders, rid, path)
        dossier["sso_links"] = []
        path.write_text(json.dumps(dossier))

        ran = await verify(orders, path)

        assert ran.code == 1, ran.stdout + ran.stderr
        assert f"does not show {ISSUER} u-1001 linked to sec.one" in ran.stdout, ran.stdout

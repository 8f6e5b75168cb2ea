"""Passkey-signed decisions end to end over HTTP (no browser): the software authenticator
(tests/webauthn_soft.py) answers as a browser's passkey does, the console prepares the challenge
and sends the signed request, the real worker checks the assertion against the registry."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.identity.keys import PrincipalKind
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models import Policy, ReleaseStatus
from gatekeeper.models.enums import EvidenceKind
from gatekeeper.models.messages import AmendRequest
from gatekeeper.models.spec import EvidenceRef
from gatekeeper.statements import b64url_decode, public_key_b64
from tests import factories
from tests.console.conftest import BASE_URL, Console, console_for, console_settings
from tests.console.test_release_page import act, seen_on, unchanged
from tests.identity_fixtures import admin_key, write_key
from tests.webauthn_soft import SoftAuthenticator
from tests.workflows.conftest import Harness

RP_ID = "127.0.0.1"


def authenticator(seed: str) -> SoftAuthenticator:
    """A passkey for the tests' console (its origin and relying party id)."""
    return SoftAuthenticator(rp_id=RP_ID, origin=BASE_URL, seed=seed)


def registry_of(harness: Harness) -> IdentityRegistry:
    return harness.adapters.identity


async def register_passkey(console: Console, harness: Harness, soft: SoftAuthenticator) -> str:
    """Register ``soft`` on the passkey page as the signed-in person; an identity admin approves
    it. Returns what the page said while it waited."""
    token = await console.csrf("/passkeys")
    options = await console.post("/passkeys/options", json={}, headers={"X-CSRF-Token": token})
    assert options.status_code == 200, options.text
    made = soft.registration(b64url_decode(options.json()["challenge"]))
    credential = {
        "id": made["id"],
        "rawId": made["rawId"],
        "type": made["type"],
        "response": {
            "clientDataJSON": made["client_data_json"],
            "attestationObject": made["attestation_object"],
        },
    }
    answer = await console.post(
        "/passkeys",
        json={"credential": credential, "label": "test key"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 200, answer.text
    enrollment = answer.json()["enrollment_id"]
    registry = registry_of(harness)
    admin = admin_key(registry, harness.adapters.worker_key_path.parent / "admin-keys")  # type: ignore[union-attr]
    await asyncio.to_thread(registry.approve_passkey, enrollment, admin)
    return str(answer.json()["message"])


async def prepare(
    console: Console, release_id: str, action: str, fields: dict[str, Any], seen: str
) -> dict[str, Any]:
    token = await console.csrf(f"/releases/{release_id}")
    answer = await console.post(
        f"/releases/{release_id}/prepare",
        json={"action": action, "fields": fields, "seen": seen},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def sign_and_act(
    console: Console,
    soft: SoftAuthenticator,
    release_id: str,
    action: str,
    fields: dict[str, str],
    seen: str | None = None,
) -> str:
    """What console.js does: prepare, have the passkey sign the challenge, submit the form."""
    if seen is None:
        seen = seen_on((await console.get(f"/releases/{release_id}")).text)
    prepared = await prepare(console, release_id, action, fields, seen)
    assert prepared["allow_credentials"] == [soft.credential_id]
    assert prepared["key_id"] == soft.key_id
    signed = soft.assertion(b64url_decode(prepared["challenge"]))
    return await act(
        console,
        release_id,
        {
            "action": action,
            **fields,
            "seen": seen,
            "signed_at": prepared["signed_at"],
            "nonce": prepared["nonce"],
            "key_id": prepared["key_id"],
            **signed,
        },
    )


class TestPasskeyRegistration:
    """A passkey registered on the page waits for an identity admin, then is active."""

    async def test_register_wait_for_admin_then_active(
        self, console: Console, harness: Harness
    ) -> None:
        await console.dev_signin("sam.safety")
        soft = authenticator("sam-reg")
        token = await console.csrf("/passkeys")
        options = await console.post("/passkeys/options", json={}, headers={"X-CSRF-Token": token})
        body = options.json()
        assert body["rp"]["id"] == RP_ID
        assert body["authenticatorSelection"]["userVerification"] == "required"
        assert [p["alg"] for p in body["pubKeyCredParams"]] == [-7]
        made = soft.registration(b64url_decode(body["challenge"]))
        credential = {
            "id": made["id"],
            "rawId": made["rawId"],
            "type": "public-key",
            "response": {
                "clientDataJSON": made["client_data_json"],
                "attestationObject": made["attestation_object"],
            },
        }
        answer = await console.post(
            "/passkeys", json={"credential": credential}, headers={"X-CSRF-Token": token}
        )
        assert answer.status_code == 200, answer.text
        enrollment = answer.json()["enrollment_id"]
        assert answer.json()["message"] == (
            f"pending: waiting for an identity admin: `gatekeeper keys passkey approve {enrollment}`"
        )
        page = (await console.get("/passkeys")).text
        assert 'data-testid="passkey-warning"' in page  # a browser needs a host name, not an IP
        assert 'data-state="pending"' in page
        assert f"gatekeeper keys passkey approve {enrollment}" in page
        assert registry_of(harness).passkeys("sam.safety") == []  # counts for nothing yet

        registry = registry_of(harness)
        admin = admin_key(registry, harness.adapters.worker_key_path.parent / "admin-keys")  # type: ignore[union-attr]
        await asyncio.to_thread(registry.approve_passkey, enrollment, admin)
        page = (await console.get("/passkeys")).text
        assert 'data-state="approved"' in page and soft.key_id in page

    async def test_a_registration_for_another_challenge_is_refused(
        self, console: Console, harness: Harness
    ) -> None:
        await console.dev_signin("sam.safety")
        soft = authenticator("sam-wrong")
        token = await console.csrf("/passkeys")
        await console.post("/passkeys/options", json={}, headers={"X-CSRF-Token": token})
        made = soft.registration(b"\x01" * 32)
        answer = await console.post(
            "/passkeys",
            json={
                "credential": {
                    "id": made["id"],
                    "rawId": made["rawId"],
                    "type": "public-key",
                    "response": {
                        "clientDataJSON": made["client_data_json"],
                        "attestationObject": made["attestation_object"],
                    },
                }
            },
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 400
        assert answer.json()["error"].startswith(
            "refused: the passkey's registration does not verify"
        )
        assert registry_of(harness).pending_passkeys("sam.safety") == []


class TestPasskeyDecisions:
    """A decision signed with the reviewer's passkey over what the page showed is accepted and
    the release moves on; one over what the release no longer is gets the worker's refusal."""

    async def test_passkey_approvals_move_the_release_on(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        rid = status.release_id
        for person, role in factories.INTERNAL_REVIEW:
            await console.dev_signin(person)
            soft = authenticator(f"{person}-{rid}")
            said = await register_passkey(console, harness, soft)
            assert said.startswith("pending: waiting for an identity admin: ")
            line = await sign_and_act(
                console, soft, rid, "approve", {"role": role, "comment": f"{role} ok"}
            )
            assert line.startswith(f"{person} approved internal_review as {role}"), line
        moved: ReleaseStatus = await harness.until(
            rid, lambda s: s.stage not in (None, "internal_review"), what="the review to pass"
        )
        assert moved.gates["internal_review"].closed_at is not None
        gate = moved.gates["internal_review"]
        assert all(d.key_id and d.key_id.startswith("webauthn:") for d in gate.decisions)

        await console.dev_signin("lee.legal")
        page = (await console.get(f"/releases/{rid}")).text
        kinds = re.findall(r'data-testid="signature-kind" data-kind="([a-z]+)"', page)
        assert kinds == ["webauthn"] * 3
        assert page.count("✓ verifies") == 3
        token = await console.csrf(f"/releases/{rid}")
        verified = await console.post(f"/releases/{rid}/verify", data={"csrf_token": token})
        result = re.search(r'data-testid="verify-result"[^>]*>([^<]*)<', verified.text)
        assert result and html.unescape(result.group(1)).startswith("verified: ok: "), (
            result and result.group(1)
        )

    async def test_a_binding_gone_stale_is_refused_by_the_worker(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        rid = status.release_id
        await console.dev_signin("sam.safety")
        soft = authenticator(f"sam-stale-{rid}")
        await register_passkey(console, harness, soft)
        seen = seen_on((await console.get(f"/releases/{rid}")).text)
        card = EvidenceRef(
            id="system-card",
            kind=EvidenceKind.SYSTEM_CARD,
            uri="https://evidence.example/system-card-v2.pdf",
            sha256=factories.sha("card v2"),
        )
        await harness.releases.amend(rid, AmendRequest(by=factories.SUBMITTER, evidence=[card]))
        before = await harness.releases.status(rid)
        line = await sign_and_act(console, soft, rid, "approve", {"role": "safety"}, seen=seen)
        assert line == (
            "the signature covers other evidence than the release holds (system-card); "
            "look again and sign"
        )
        await unchanged(harness, before)

    async def test_an_assertion_over_other_fields_is_refused_by_the_worker(
        self, console: Console, harness: Harness
    ) -> None:
        """The passkey signed the prepared comment; the form then sends another one."""
        status = await harness.start()
        rid = status.release_id
        await console.dev_signin("sam.safety")
        soft = authenticator(f"sam-swap-{rid}")
        await register_passkey(console, harness, soft)
        seen = seen_on((await console.get(f"/releases/{rid}")).text)
        prepared = await prepare(console, rid, "approve", {"role": "safety", "comment": "a"}, seen)
        signed = soft.assertion(b64url_decode(prepared["challenge"]))
        before = await harness.releases.status(rid)
        line = await act(
            console,
            rid,
            {
                "action": "approve",
                "role": "safety",
                "comment": "b",
                "seen": seen,
                "signed_at": prepared["signed_at"],
                "nonce": prepared["nonce"],
                "key_id": prepared["key_id"],
                **signed,
            },
        )
        assert line == (
            "the passkey assertion is for another statement (challenge differs); look again and sign"
        )
        await unchanged(harness, before)

    async def test_prepare_without_a_passkey_says_register_one(
        self, console: Console, harness: Harness
    ) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        seen = seen_on((await console.get(f"/releases/{status.release_id}")).text)
        token = await console.csrf(f"/releases/{status.release_id}")
        answer = await console.post(
            f"/releases/{status.release_id}/prepare",
            json={"action": "approve", "fields": {"role": "safety"}, "seen": seen},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 409
        assert answer.json()["error"].startswith("refused: you have no active passkey")


ISSUER = "https://idp.example"


def oidc_session_cookie(person: str, subject: str) -> str:
    """The session cookie an OpenID Connect sign-in leaves (Starlette's signed session, with
    the test console's secret): the identity provider's part is the console helper's tests'."""
    import base64
    import json
    import secrets
    import time

    from itsdangerous import TimestampSigner

    from tests.console.conftest import SECRET

    session = {
        "person": person,
        "issuer": ISSUER,
        "subject": subject,
        "auth_time": int(time.time()) - 60,
        "csrf": "c" * 43,
        "sid": secrets.token_urlsafe(24),
    }
    data = base64.b64encode(json.dumps(session).encode("utf-8"))
    return TimestampSigner(SECRET).sign(data).decode("utf-8")


@pytest_asyncio.fixture(loop_scope="session")
async def gateway_setup(harness: Harness, tmp_path: Path) -> AsyncIterator[tuple[Console, Policy]]:
    """A console holding a gateway key registered as a gateway, sam.safety's OIDC identity
    linked to him, and a policy that accepts gateway-attested approvals."""
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "console-gateway.pem"
    write_key(key_file, key)
    registry = registry_of(harness)
    admin = admin_key(registry, harness.adapters.worker_key_path.parent / "admin-keys")  # type: ignore[union-attr]
    await asyncio.to_thread(
        lambda: registry.register(
            principal="console",
            principal_kind=PrincipalKind.GATEWAY,
            public_key=public_key_b64(key),
            admin_key=admin,
        )
    )
    await asyncio.to_thread(
        lambda: registry.link_sso("sam.safety", issuer=ISSUER, subject="sub-sam", admin_key=admin)
    )
    policy = factories.policy(version="gw", gateway_attestation=["approve"])
    await asyncio.to_thread(harness.install, factories.policy(), default=True)
    settings = console_settings(
        harness.env.client,
        harness.data_dir,
        harness.releases.task_queue,
        console={"gateway_key": str(key_file)},
    )
    async with console_for(settings) as found:
        yield found, policy


class TestGatewayAttested:
    """Where the release's policy lists the action, a person signed in through OpenID Connect
    may have the console attest the decision with its gateway key; a development sign-in
    attests nobody."""

    async def test_gateway_attested_approval_is_accepted(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        console, policy = gateway_setup
        status = await harness.start(policy=policy)
        rid = status.release_id
        console.http.cookies.set("gk_session", oidc_session_cookie("sam.safety", "sub-sam"))
        page = (await console.get(f"/releases/{rid}")).text
        assert 'data-testid="decision-submit-gateway"' in page
        line = await act(
            console,
            rid,
            {"action": "approve", "role": "safety", "seen": seen_on(page), "mode": "gateway"},
        )
        assert line.startswith("sam.safety approved internal_review as safety"), line
        decided = (await console.get(f"/releases/{rid}")).text
        kinds = re.findall(r'data-testid="signature-kind" data-kind="([a-z]+)">([^<]*)<', decided)
        assert kinds == [("gateway", f"gateway (SSO {ISSUER} sub-sam)")]
        assert "✓ verifies" in decided

    async def test_development_sign_in_gets_no_gateway_attestation(
        self, gateway_setup: tuple[Console, Policy], harness: Harness
    ) -> None:
        console, policy = gateway_setup
        status = await harness.start(policy=policy)
        await console.dev_signin("sam.safety")
        page = (await console.get(f"/releases/{status.release_id}")).text
        assert 'data-testid="decision-submit-gateway"' not in page
        before = await harness.releases.status(status.release_id)
        line = await act(
            console,
            status.release_id,
            {"action": "approve", "role": "safety", "seen": seen_on(page), "mode": "gateway"},
        )
        assert line == (
            "refused: a development sign-in attests no identity; sign with your passkey"
        )
        await unchanged(harness, before)


class TestOperatorByPasskey:
    """An operator holds and resumes a release, each signed with her passkey."""

    async def test_hold_and_resume(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await console.dev_signin(factories.OPERATOR)
        soft = authenticator(f"olga-{rid}")
        await register_passkey(console, harness, soft)
        line = await sign_and_act(console, soft, rid, "hold", {"reason": "incident <b>42</b>"})
        assert line == f"held by {factories.OPERATOR}"
        held = await harness.releases.status(rid)
        assert [h.reason for h in held.active_holds()] == ["incident <b>42</b>"]
        page = (await console.get(f"/releases/{rid}")).text
        assert "incident &lt;b&gt;42&lt;/b&gt;" in page
        assert "resume" in re.findall(r'data-action="([a-z_]+)"', page)
        line = await sign_and_act(console, soft, rid, "resume", {"reason": "fixed"})
        assert "resume" in line or "lifted" in line, line
        assert not (await harness.releases.status(rid)).active_holds()


class TestAnonymous:
    """Nobody signed in gets the release page, its JSON or its dossier."""

    async def test_anonymous_is_sent_to_sign_in(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        page = await console.get(f"/releases/{rid}")
        assert page.status_code == 303 and page.headers["location"] == "/signin"
        dossier = await console.get(f"/releases/{rid}/dossier")
        assert dossier.status_code == 303 and dossier.headers["location"] == "/signin"
        prepared = await console.post(
            f"/releases/{rid}/prepare", json={"action": "approve"}, headers={"X-CSRF-Token": "x"}
        )
        assert prepared.status_code in (401, 403)
        passkeys = await console.get("/passkeys")
        assert passkeys.status_code == 303


class TestSeveralPasskeys:
    """Someone with passkeys on several devices chooses which one signs: the form lists them by
    label and date registered (newest first, the default), prepare signs for the chosen key, and
    a key that is not one of the person's active passkeys is refused in one line."""

    async def test_choose_which_passkey_signs(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        registry = registry_of(harness)
        admin = admin_key(registry, harness.adapters.worker_key_path.parent / "admin-keys")  # type: ignore[union-attr]
        laptop = authenticator(f"sam-laptop-{rid}")
        phone = authenticator(f"sam-phone-{rid}")
        lenas = authenticator(f"lena-{rid}")
        for soft, person, label in (
            (laptop, "sam.safety", "laptop"),
            (phone, "sam.safety", "phone"),
            (lenas, "lena.fischer", "lena's"),
        ):
            enrollment = await asyncio.to_thread(soft.enroll, registry, person, label)
            await asyncio.to_thread(registry.approve_passkey, enrollment.enrollment_id, admin)

        await console.dev_signin("sam.safety")
        listed = (await console.get("/passkeys")).text
        assert f"“laptop” <code>{laptop.key_id}</code>" in listed
        assert f"“phone” <code>{phone.key_id}</code>" in listed
        page = (await console.get(f"/releases/{rid}")).text
        choice = re.search(
            r'<form[^>]*data-action="approve".*?<select name="passkey" data-testid="passkey-choice">'
            r"(.*?)</select>",
            page,
            re.S,
        )
        assert choice, "the approve form offers no choice of passkey"
        options = re.findall(r'<option value="([^"]+)"( selected)?>([^<]*)<', choice.group(1))
        assert [(key, bool(selected)) for key, selected, _ in options] == [
            (phone.key_id, True),
            (laptop.key_id, False),
        ]
        assert [html.unescape(text).split(" · ")[0] for _, _, text in options] == [
            "phone",
            "laptop",
        ]
        assert all(" · registered 20" in text for _, _, text in options)

        seen = seen_on(page)
        token = await console.csrf(f"/releases/{rid}")

        async def prepare_for(key_id: object) -> Any:
            body: dict[str, Any] = {"action": "approve", "fields": {"role": "safety"}, "seen": seen}
            if key_id is not None:
                body["key_id"] = key_id
            return await console.post(
                f"/releases/{rid}/prepare", json=body, headers={"X-CSRF-Token": token}
            )

        newest = await prepare_for(None)
        assert newest.status_code == 200
        assert newest.json()["key_id"] == phone.key_id
        before = await harness.releases.status(rid)
        for wrong in (lenas.key_id, "webauthn:" + "0" * 32, ["x"]):
            refused = await prepare_for(wrong)
            assert refused.status_code == 400, refused.text
            line = refused.json()["error"]
            assert "\n" not in line
            assert line.startswith("refused: ") and "is not one of your active passkeys" in line
        await unchanged(harness, before)

        older = await prepare_for(laptop.key_id)
        assert older.status_code == 200, older.text
        prepared = older.json()
        assert prepared["key_id"] == laptop.key_id
        assert prepared["allow_credentials"] == [laptop.credential_id]
        assert prepared["statement"]["key_id"] == laptop.key_id
        signed = laptop.assertion(b64url_decode(prepared["challenge"]))
        line = await act(
            console,
            rid,
            {
                "action": "approve",
                "role": "safety",
                "seen": seen,
                "passkey": laptop.key_id,
                "signed_at": prepared["signed_at"],
                "nonce": prepared["nonce"],
                "key_id": prepared["key_id"],
                **signed,
            },
        )
        assert line.startswith("sam.safety approved internal_review as safety"), line
        decided = await harness.releases.status(rid)
        assert [d.key_id for d in decided.gates["internal_review"].decisions] == [laptop.key_id]

    async def test_one_passkey_no_choice(self, console: Console, harness: Harness) -> None:
        status = await harness.start()
        await console.dev_signin("sam.safety")
        await register_passkey(console, harness, authenticator(f"sam-only-{status.release_id}"))
        page = (await console.get(f"/releases/{status.release_id}")).text
        assert 'data-testid="decision-form"' in page
        assert 'data-testid="passkey-choice"' not in page

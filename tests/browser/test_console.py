"""The console in a real browser: sign-in through a real OpenID provider, the inbox and the
release page, passkey-signed decisions, and the refusals a console must make.

Everything is real (:mod:`tests.browser.console_fixtures`): the provider (oidc-provider-mock),
the worker on the session's dev server with its identity registry, the console served by uvicorn,
Debian's chromium with a virtual authenticator. Run alone with ``pytest -m browser``; without
chromium or playwright it skips, except in CI (``CI`` set).
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from gatekeeper.models import DecisionKind
from tests import factories
from tests.browser.console_fixtures import Stack, Visitor, sample_spec
from tests.helpers import status_until

pytestmark = pytest.mark.browser

#: Every page the console serves to a signed-in person (``{id}``: a release).
#: Every POST route (``{id}``: a release); anonymous, each is refused before it acts.
POSTS = [
    "/releases/{id}/act",
    "/releases/{id}/prepare",
    "/releases/{id}/verify",
    "/passkeys/options",
    "/passkeys",
    "/signout",
]
PAGES = [
    "/",
    "/inbox",
    "/releases",
    "/releases/{id}",
    "/releases/{id}/dossier",
    "/orders",
    "/passkeys",
]


async def history_size(stack: Stack, release_id: str) -> tuple[int, int]:
    """(audit events, status version): what a refused request must leave as it was."""
    status = await stack.releases.status(release_id)
    return len(await stack.releases.audit(release_id)), status.status_version


async def act_form(
    visitor: Visitor, release_id: str, **fields: str | None
) -> dict[str, str | float | bool]:
    """What a hand-made POST to ``/releases/{id}/act`` carries: a decision's fields, a made-up
    passkey assertion, what the page showed (``seen``, from any of its forms) and (unless
    given) the session's real CSRF token."""
    await visitor.page.goto(f"/releases/{release_id}")
    seen = await visitor.page.locator("input[name=seen]").first.get_attribute("value")
    assert seen
    form: dict[str, str | None] = {
        "csrf_token": await visitor.csrf(),
        "seen": seen,
        "signed_at": "2026-01-01T00:00:00+00:00",
        "nonce": "0" * 32,
        "key_id": "webauthn:" + "0" * 32,
        "credential_id": "AAAA",
        "authenticator_data": "AAAA",
        "client_data_json": "e30",
        "signature": "AAAA",
    }
    form.update(fields)
    return {k: v for k, v in form.items() if v is not None}


class TestSignIn:
    """A roster person signs in through the real OpenID provider and sees their inbox: the
    releases waiting for them, with their role; signing out ends the session."""

    async def test_sign_in_inbox_sign_out(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        async with stack.person("priya.natarajan") as priya:
            page = priya.page
            await expect(page.get_by_text("Priya Natarajan").first).to_be_visible()
            row = page.locator(f"[data-testid=inbox-row][data-release='{status.release_id}']")
            await expect(row).to_have_count(1)
            await expect(row).to_contain_text("internal_review")
            await expect(row).to_contain_text("safety")
            await expect(page.get_by_test_id("dev-banner")).to_have_count(0)

            await page.get_by_test_id("signout").click()
            await page.wait_for_url(re.compile(r"/signin"))
            await page.goto("/inbox")
            await page.wait_for_url(re.compile(r"/signin"))

    async def test_the_page_asked_for_comes_after_sign_in(self, stack: Stack) -> None:
        """A link to a release (as a notification carries it) opened before sign-in: the
        console asks to sign in, then shows that release, not the inbox."""
        status = await stack.start()
        async with stack.person("hannah.cho", sign_in=False) as hannah:
            await hannah.page.goto(f"/releases/{status.release_id}")
            await hannah.page.wait_for_url(re.compile(r"/signin$"))
            await hannah.sign_in(landing=f"/releases/{status.release_id}")
            await hannah.at_stage(status.release_id, "internal_review")

    async def test_a_subject_linked_to_nobody_is_not_signed_in(self, stack: Stack) -> None:
        """The provider vouches for a subject the identity registry links to no one: the
        console signs nobody in and says how an identity admin links it."""
        from playwright.async_api import expect

        async with stack.person("mallory", sign_in=False) as mallory:
            page = mallory.page
            await page.goto("/signin")
            await page.get_by_test_id("signin-oidc").click()
            await page.locator("input[name=sub]").fill("sub-mallory")
            await page.get_by_role("button", name="Authorize").click()
            await expect(
                page.get_by_text("no Gatekeeper person is linked to sub-mallory")
            ).to_be_visible()
            await expect(page.get_by_test_id("signout")).to_have_count(0)
            await page.goto("/inbox")
            await page.wait_for_url(re.compile(r"/signin$"))


class TestOpenRelease:
    """From the inbox a reviewer opens a release: the stage graph, who is awaited by name, the
    evidence with its digests, and the decision forms of her role."""

    async def test_open_from_inbox(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        rid = status.release_id
        async with stack.person("lena.fischer") as lena:
            page = lena.page
            await page.locator(f"[data-testid=inbox-row][data-release='{rid}'] a").first.click()
            await page.wait_for_url(re.compile(rf"/releases/{re.escape(rid)}$"))
            await lena.at_stage(rid, "internal_review")
            awaited = page.get_by_test_id("awaited")
            for name in ("Priya Natarajan", "Lena Fischer", "Hannah Cho"):
                await expect(awaited).to_contain_text(name)
            for item in status.spec.evidence:
                await expect(page.get_by_text(item.sha256[:16]).first).to_be_visible()
            approve = page.locator("[data-testid=decision-form][data-action=approve]")
            await expect(approve).to_have_count(1)


class TestPasskeyApproval:
    """A reviewer registers a passkey (pending until an identity admin approves it with the
    real CLI), approves with it in the browser, and the worker records the approval as signed
    by her passkey; once the gate's other conditions hold the release moves on, as the page
    shows."""

    async def test_register_approve_and_move_on(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        rid = status.release_id
        async with stack.person("priya.natarajan") as priya:
            await priya.register_passkey(approve=False)
            # Pending: it signs nothing until an identity admin approves it.
            before = await history_size(stack, rid)
            page = priya.page
            await page.goto(f"/releases/{rid}")
            form = page.locator("[data-testid=decision-form][data-action=approve]")
            await form.get_by_test_id("decision-comment").fill("too early")
            await form.get_by_test_id("decision-submit").click()
            await expect(form.locator(".sign-status")).to_contain_text(
                "refused: you have no active passkey"
            )
            assert await history_size(stack, rid) == before
            await stack.approve_passkeys("priya.natarajan")
            stack.passkeys["priya.natarajan"] = (await priya.credentials())[0]
            await priya.page.goto("/passkeys")
            await expect(priya.page.get_by_test_id("passkey-status")).to_have_text("active")

            flash = await priya.decide(rid, "approve", comment="Evals adequate for the tier.")
            assert "refused" not in flash.lower(), flash
            after = await stack.releases.status(rid)
            gate = after.gates["internal_review"]
            assert [d.person for d in gate.decisions if d.kind is DecisionKind.APPROVE] == [
                "priya.natarajan"
            ]
            assert (await history_size(stack, rid))[0] > before[0]
            events = await stack.releases.audit(rid)
            [approved] = [e for e in events if e.action == "decision_approve"]
            assert approved.actor == "priya.natarajan"
            assert approved.details["attestation"]["kind"] == "webauthn", approved.details
            kinds = priya.page.get_by_test_id("signature-kind")
            await expect(kinds.first).to_contain_text("passkey")

            # The others approve (their CLI keys, through the client API), a reviewer attests
            # the evidence's authorship: the gate closes and the release moves on.
            await stack.attest_authorship(rid, "priya.natarajan")
            for decider, role in (("lena.fischer", "security"), ("hannah.cho", "legal")):
                await stack.releases.decide(
                    rid, DecisionKind.APPROVE, factories.decision(decider, role)
                )
            await stack.until(rid, "government_testing_window")
            await priya.at_stage(rid, "government_testing_window")
            await expect(
                priya.page.locator("[data-testid=decision-form][data-action=approve]")
            ).to_have_count(0)


class TestNoRoleNoForm:
    """A person without the role sees no decision form, and a forged POST with her valid
    session and CSRF token is refused before anything is sent: nothing changes."""

    async def test_no_form_and_forged_post_refused(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        rid = status.release_id
        async with stack.person("kim.larsen") as kim:
            await kim.page.goto(f"/releases/{rid}")
            for action in ("approve", "reject", "request_changes"):
                await expect(
                    kim.page.locator(f"[data-testid=decision-form][data-action={action}]")
                ).to_have_count(0)
            before = await history_size(stack, rid)
            response = await kim.page.request.post(
                f"/releases/{rid}/act",
                form=await act_form(kim, rid, action="approve", role="safety", comment="forged"),
            )
            assert response.status == 403
            assert "refused: you may not approve this release now" in unescape(
                await response.text()
            )
            assert await history_size(stack, rid) == before
            status = await stack.releases.status(rid)
            assert status.gates["internal_review"].decisions == []

        # A reviewer who holds another role: her form offers only her own; a POST naming a
        # role she does not hold is refused the same way.
        async with stack.person("samuel.okafor") as samuel:
            await samuel.page.goto(f"/releases/{rid}")
            roles = samuel.page.locator(
                "[data-testid=decision-form][data-action=approve] select[name=role] option"
            )
            await expect(roles).to_have_text(["safety"])
            response = await samuel.page.request.post(
                f"/releases/{rid}/act",
                form=await act_form(samuel, rid, action="approve", role="legal", comment="forged"),
            )
            assert response.status == 403
            assert "refused: you may not decide this gate as 'legal'" in unescape(
                await response.text()
            )
            assert await history_size(stack, rid) == before


class TestMarkupIsInert:
    """A comment holding a script, an image with onerror and Rich/Markdown markup, typed in the
    console, is shown as the literal text it is: no script runs, no dialog opens, nothing is
    rendered as markup (and the same for the spec's description and an evidence title)."""

    COMMENT = (
        "<script>alert('xss')</script> [bold]loud[/bold] **strong** "
        "<img src=x onerror=\"alert('img')\"> [link=https://evil.example]click[/link]"
    )

    async def test_comment_and_description_shown_literally(self, stack: Stack) -> None:
        from playwright.async_api import expect

        title = "Evals <script>alert('spec')</script> **bold** [red]red[/red] <b>b</b>"
        evidence = [
            {**item.model_dump(mode="json"), "title": title if n == 0 else item.title}
            for n, item in enumerate(sample_spec("x").evidence)
        ]
        description = "Model <b>bold</b> __under__ [italic]it[/italic] <script>alert(1)</script>"
        status = await stack.start(evidence=evidence, description=description)
        rid = status.release_id
        async with stack.person("hannah.cho") as hannah:
            await hannah.ensure_passkey()
            flash = await hannah.decide(rid, "request_changes", comment=self.COMMENT)
            assert "refused" not in flash.lower(), flash
            page = hannah.page
            await page.goto(f"/releases/{rid}")
            await expect(page.get_by_text(self.COMMENT, exact=False).first).to_be_visible()
            await expect(page.get_by_text(title).first).to_be_visible()
            await expect(page.get_by_text(description).first).to_be_visible()
            # Nothing of it became an element: no image, no handler, no emphasis, and no
            # inline script beyond what the console itself ships.
            assert await page.locator("img[src=x], [onerror]").count() == 0
            assert await page.locator("strong, b").filter(has_text="strong").count() == 0
            assert await page.locator("script").filter(has_text="alert").count() == 0
            await page.reload()
            assert hannah.dialogs == []


class TestCsrf:
    """A POST without the session's CSRF token, or with a wrong one, is refused with the
    one-line reason, and nothing changes (not even signing out)."""

    async def test_missing_and_wrong_token_refused(self, stack: Stack) -> None:
        status = await stack.start()
        rid = status.release_id
        async with stack.person("samuel.okafor") as samuel:
            before = await history_size(stack, rid)
            for token in (None, "wrong-" + "x" * 40):
                response = await samuel.page.request.post(
                    f"/releases/{rid}/act",
                    form=await act_form(
                        samuel, rid, action="approve", role="safety", comment="x", csrf_token=token
                    ),
                    max_redirects=0,
                )
                assert response.status == 403
                assert "refused: the form's CSRF token is missing or wrong; reload the page" in (
                    unescape(await response.text())
                )
            response = await samuel.page.request.post("/signout", form={}, max_redirects=0)
            assert response.status == 403
            await samuel.page.goto("/inbox")
            assert samuel.page.url.endswith("/inbox")
            assert await history_size(stack, rid) == before


class TestAnonymous:
    """Nothing but the sign-in page is served to an anonymous visitor: every page redirects to
    it, and every POST (forms and the JSON API) is refused; nothing changes."""

    async def test_every_page_redirects_to_sign_in(self, stack: Stack) -> None:
        status = await stack.start()
        rid = status.release_id
        async with stack.person("nobody", sign_in=False) as anonymous:
            for path in PAGES:
                url = path.format(id=rid)
                response = await anonymous.page.request.get(url, max_redirects=0)
                assert response.status == 303, (url, response.status)
                assert response.headers["location"].endswith("/signin"), url
                await anonymous.page.goto(url)
                assert anonymous.page.url == f"{stack.console}/signin", url
            before = await history_size(stack, rid)
            for path in POSTS:
                url = path.format(id=rid)
                response = await anonymous.page.request.post(
                    url, form={"action": "approve", "role": "safety"}, max_redirects=0
                )
                refused = response.status in (401, 403) or (
                    response.status == 303 and response.headers["location"].endswith("/signin")
                )
                assert refused, (url, response.status, response.headers.get("location"))
            response = await anonymous.page.request.post(
                f"/releases/{rid}/prepare",
                data={"action": "approve", "fields": {"role": "safety"}},
                headers={"Accept": "application/json"},
                max_redirects=0,
            )
            assert response.status in (401, 403)
            assert await history_size(stack, rid) == before


class TestOperatorHoldResume:
    """An operator holds a release with a reason and resumes it, each signed with her passkey;
    the page shows the hold, and the reviewers' forms only after the resume."""

    async def test_hold_then_resume(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        rid = status.release_id
        async with stack.person("kim.larsen") as kim:
            await kim.ensure_passkey()
            flash = await kim.decide(rid, "hold", reason="export-control review")
            assert "refused" not in flash.lower(), flash
            held = await stack.releases.status(rid)
            assert [h.reason for h in held.active_holds()] == ["export-control review"]
            await expect(kim.page.get_by_text("export-control review").first).to_be_visible()
            await expect(
                kim.page.locator("[data-testid=decision-form][data-action=resume]")
            ).to_have_count(1)

            flash = await kim.decide(rid, "resume", reason="cleared by counsel")
            assert "refused" not in flash.lower(), flash
            resumed = await stack.releases.status(rid)
            assert resumed.active_holds() == []
            assert resumed.awaiting is not None and "safety" in resumed.awaiting.roles


class TestGatewayAttestation:
    """Where the release's policy accepts it (the demo policy: gate decisions), a reviewer
    signed in through the provider may decide with the console's attestation of her OIDC
    identity instead of a passkey: the worker records it as a gateway signature naming her
    issuer and subject, and the page says so. Operator actions offer no such button."""

    async def test_approve_attested_by_the_console(self, stack: Stack) -> None:
        from playwright.async_api import expect

        status = await stack.start()
        rid = status.release_id
        async with stack.person("tomas.alvarez") as tomas:
            page = tomas.page
            await page.goto(f"/releases/{rid}")
            form = page.locator("[data-testid=decision-form][data-action=approve]")
            await form.get_by_test_id("decision-comment").fill("Terms reviewed.")
            await form.get_by_test_id("decision-submit-gateway").click()
            flash = page.get_by_test_id("flash")
            await expect(flash).to_contain_text("tomas.alvarez approved internal_review")
            subject = f"gateway (SSO {stack.provider.issuer} sub-tomas.alvarez)"
            await expect(page.get_by_test_id("signature-kind").first).to_have_text(subject)

        events = await stack.releases.audit(rid)
        [approved] = [e for e in events if e.action == "decision_approve"]
        attestation = approved.details["attestation"]
        assert attestation["kind"] == "gateway"
        assert attestation["statement"]["sso"]["subject"] == "sub-tomas.alvarez"
        assert attestation["statement"]["sso"]["issuer"] == stack.provider.issuer

        async with stack.person("kim.larsen") as kim:
            await kim.page.goto(f"/releases/{rid}")
            hold = kim.page.locator("[data-testid=decision-form][data-action=hold]")
            await expect(hold).to_have_count(1)
            await expect(hold.get_by_test_id("decision-submit-gateway")).to_have_count(0)


class TestStalePageRefused:
    """A reviewer signs what her page showed: when the submitter amended an evidence item
    after she loaded the page, the worker refuses her passkey-signed approval with its one-line
    reason, which the page shows, and records nothing; reloaded, she approves what she sees."""

    async def test_amended_since_loaded(self, stack: Stack) -> None:
        from playwright.async_api import expect

        from gatekeeper.models.messages import AmendRequest

        status = await stack.start()
        rid = status.release_id
        items = {item.id: item for item in status.spec.evidence}
        async with stack.person("marcus.bell") as marcus:
            await marcus.ensure_passkey()
            page = marcus.page
            await page.goto(f"/releases/{rid}")

            # Meanwhile the submitter points the system card at another (real) file.
            other = items["red-team-report"]
            moved = items["system-card"].model_copy(
                update={"uri": other.uri, "sha256": other.sha256}
            )
            await stack.releases.amend(
                rid, AmendRequest(by=status.spec.submitter, evidence=[moved], note="new card")
            )
            await status_until(
                stack.releases,
                rid,
                lambda s: (
                    s.awaiting is not None
                    and "security" in s.awaiting.roles
                    and {e.id: e.sha256 for e in s.spec.evidence}["system-card"] == other.sha256
                ),
                what="the amended release waiting for security again",
            )
            before = await history_size(stack, rid)

            form = page.locator("[data-testid=decision-form][data-action=approve]")
            await form.get_by_test_id("decision-comment").fill("Looks fine.")
            await form.get_by_test_id("decision-submit").click()
            await expect(page.get_by_test_id("flash")).to_contain_text(
                "the signature covers other evidence than the release holds (system-card); "
                "look again and sign"
            )
            after = await stack.releases.status(rid)
            assert [d.person for d in after.gates["internal_review"].decisions] == []
            # The worker's refusal of a signed request leaves the release as it was, apart
            # from the refusal it records.
            assert (await history_size(stack, rid))[1] == before[1]

            flash = await marcus.decide(rid, "approve", comment="Seen the new card.")
            assert flash.startswith("marcus.bell approved internal_review"), flash

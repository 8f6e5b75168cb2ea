"""Sign-in by OpenID Connect, end to end, against a real provider (``oidc-provider-mock``)
running in the test: the ID token's (issuer, subject) must be linked to a person in the
identity registry; state and nonce are checked; an unlinked identity gets no session."""

from __future__ import annotations

import asyncio
import html
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import authlib.deprecate
import httpx
import pytest
import pytest_asyncio

from gatekeeper.console.settings import OidcSettings
from tests.console.conftest import BASE_URL, Console, ConsoleHarness, console_for, console_settings
from tests.identity_fixtures import admin_key

with warnings.catch_warnings():
    # The provider is written against authlib.jose, which authlib 1.9 deprecates on import.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from oidc_provider_mock import run_server_in_thread

#: ... and at every use, in the provider's thread too (its grant uses authlib's legacy hooks).
pytestmark = [
    pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]


@dataclass
class Provider:
    issuer: str

    async def authorize(self, url: str, subject: str) -> str:
        """The provider's answer to the person signing in as ``subject``: where it sends the
        browser back (the console's callback, with a code and the state)."""
        async with httpx.AsyncClient() as browser:
            answer = await browser.post(url, data={"sub": subject})
        assert answer.status_code == 302, answer.text[:500]
        return answer.headers["location"]


@pytest.fixture
def provider() -> Iterator[Provider]:
    with run_server_in_thread() as server:
        yield Provider(f"http://localhost:{server.server_port}")


@pytest_asyncio.fixture(loop_scope="session")
async def oidc_console(harness: ConsoleHarness, provider: Provider) -> AsyncIterator[Console]:
    """The console with OIDC sign-in against the test's provider (no development sign-in)."""
    settings = console_settings(
        harness.env.client,
        harness.data_dir,
        harness.releases.task_queue,
        dev_sign_in=False,
        oidc=OidcSettings(provider.issuer, "gatekeeper-console", "console-secret"),
    )
    async with console_for(settings) as console:
        yield console


def link(harness: ConsoleHarness, person: str, issuer: str, subject: str) -> None:
    registry = harness.adapters.identity
    admin = admin_key(registry, harness.data_dir / "admin-keys")
    registry.link_sso(person, issuer=issuer, subject=subject, admin_key=admin)


def unlink(harness: ConsoleHarness, person: str, issuer: str, subject: str) -> None:
    registry = harness.adapters.identity
    admin = admin_key(registry, harness.data_dir / "admin-keys")
    registry.unlink_sso(person, issuer=issuer, subject=subject, admin_key=admin)


async def sign_in(console: Console, provider: Provider, subject: str) -> httpx.Response:
    """Through the provider and back: the console's answer to the callback."""
    login = await console.get("/auth/login")
    assert login.status_code == 302, login.text
    to_provider = login.headers["location"]
    assert to_provider.startswith(provider.issuer)
    query = parse_qs(urlsplit(to_provider).query)
    assert query["redirect_uri"] == [f"{BASE_URL}/auth/callback"]
    assert query["nonce"] and query["state"] and query["code_challenge_method"] == ["S256"]
    back = await provider.authorize(to_provider, subject)
    assert back.startswith(f"{BASE_URL}/auth/callback?")
    return await console.get(back.removeprefix(BASE_URL))


def subject() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


class TestOidcSignIn:
    """A linked identity signs in as its person; anything else is refused with a reason."""

    async def test_a_linked_subject_signs_in_as_its_person(
        self, oidc_console: Console, provider: Provider, harness: ConsoleHarness
    ) -> None:
        sub = subject()
        await asyncio.to_thread(link, harness, "sam.safety", provider.issuer, sub)
        page = await oidc_console.get("/signin")
        assert 'data-testid="signin-oidc"' in page.text
        assert 'data-testid="dev-banner"' not in page.text

        # A link followed first (from a notification) leads on to its page after sign-in; what
        # the browser asks for by itself meanwhile (its favicon: no such page) does not.
        assert (await oidc_console.get("/orders")).headers["location"] == "/signin"
        assert (await oidc_console.get("/favicon.ico")).headers["location"] == "/signin"
        done = await sign_in(oidc_console, provider, sub)
        assert done.status_code == 303 and done.headers["location"] == "/orders"
        inbox = await oidc_console.get("/inbox")
        assert inbox.status_code == 200
        assert 'data-person="sam.safety"' in inbox.text
        assert 'data-testid="dev-banner"' not in inbox.text

    async def test_an_unlinked_subject_is_refused_and_told_why(
        self, oidc_console: Console, provider: Provider
    ) -> None:
        sub = subject()
        refused = await sign_in(oidc_console, provider, sub)
        assert refused.status_code == 403
        text = html.unescape(refused.text)
        assert (
            f"no Gatekeeper person is linked to {sub} at {provider.issuer}; ask an identity "
            f"admin to run `gatekeeper keys sso link PERSON --issuer {provider.issuer} "
            f"--subject {sub} --as ADMIN`"
        ) in text
        assert (await oidc_console.get("/inbox")).headers["location"] == "/signin"

    async def test_a_callback_with_another_state_is_refused(
        self, oidc_console: Console, provider: Provider, harness: ConsoleHarness
    ) -> None:
        sub = subject()
        await asyncio.to_thread(link, harness, "sam.safety", provider.issuer, sub)
        login = await oidc_console.get("/auth/login")
        back = await provider.authorize(login.headers["location"], sub)
        parts = urlsplit(back)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = "forged-" + query["state"]
        forged = urlunsplit(("", "", parts.path, urlencode(query), ""))
        refused = await oidc_console.get(forged)
        assert refused.status_code == 400
        assert "sign-in failed" in html.unescape(refused.text)
        assert (await oidc_console.get("/inbox")).headers["location"] == "/signin"

    async def test_a_callback_in_another_browser_is_refused(
        self, oidc_console: Console, provider: Provider, harness: ConsoleHarness
    ) -> None:
        """Login CSRF: a code obtained by someone else, sent to a victim's browser, signs the
        victim in as nobody (the state lives in the session of the browser that started)."""
        sub = subject()
        await asyncio.to_thread(link, harness, "sam.safety", provider.issuer, sub)
        login = await oidc_console.get("/auth/login")
        back = await provider.authorize(login.headers["location"], sub)
        async with console_for(oidc_console.settings) as victim:
            refused = await victim.get(back.removeprefix(BASE_URL))
            assert refused.status_code == 400
            assert (await victim.get("/inbox")).headers["location"] == "/signin"

    async def test_a_callback_is_used_once(
        self, oidc_console: Console, provider: Provider, harness: ConsoleHarness
    ) -> None:
        sub = subject()
        await asyncio.to_thread(link, harness, "lee.legal", provider.issuer, sub)
        login = await oidc_console.get("/auth/login")
        back = (await provider.authorize(login.headers["location"], sub)).removeprefix(BASE_URL)
        assert (await oidc_console.get(back)).status_code == 303
        token = await oidc_console.csrf("/inbox")
        await oidc_console.post("/signout", data={"csrf_token": token})
        assert (await oidc_console.get(back)).status_code == 400, "the state was consumed"
        assert (await oidc_console.get("/inbox")).headers["location"] == "/signin"

    async def test_unlinking_ends_the_session(
        self, oidc_console: Console, provider: Provider, harness: ConsoleHarness
    ) -> None:
        sub = subject()
        await asyncio.to_thread(link, harness, "sam.safety", provider.issuer, sub)
        await sign_in(oidc_console, provider, sub)
        assert (await oidc_console.get("/inbox")).status_code == 200
        await asyncio.to_thread(unlink, harness, "sam.safety", provider.issuer, sub)
        oidc_console.app.state.console._sso.clear()  # what SSO_TTL seconds do
        assert (await oidc_console.get("/inbox")).headers["location"] == "/signin"

    async def test_without_a_provider_there_is_no_oidc_route(self, console: Console) -> None:
        assert (await console.get("/auth/login")).status_code == 404
        assert (await console.get("/auth/callback?code=x&state=y")).status_code == 404

"""Who gets what: anonymous visitors only the sign-in page, every POST its CSRF token,
development sign-in only on loopback, every page the security headers."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from gatekeeper.console.auth import CSRF_REFUSED
from gatekeeper.errors import ConfigError
from tests import factories
from tests.console.conftest import (
    SECRET,
    Console,
    ConsoleHarness,
    console_for,
    console_settings,
    gatekeeper_settings,
)

#: Routes an anonymous visitor may reach: the sign-in page and the sign-in steps.
PUBLIC = {
    ("GET", "/signin"),
    ("POST", "/signin/dev"),
    ("GET", "/auth/login"),
    ("GET", "/auth/callback"),
}


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """The app's routes, through the routers it includes (none has a prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def routes(console: Console) -> list[tuple[str, str]]:
    """Every (method, path) of the app, path parameters filled in."""
    found = []
    for route in api_routes(console.app.routes):
        path = re.sub(r"\{[^}]+\}", "some-id", route.path)
        found += [(method, path) for method in sorted(route.methods)]
    return found


def shown(response: httpx.Response) -> str:
    return html.unescape(response.text)


class TestAnonymous:
    """Nothing but the sign-in page is served to a visitor who has not signed in."""

    async def test_every_route_but_sign_in_sends_them_to_sign_in(self, console: Console) -> None:
        checked = routes(console)
        assert ("GET", "/inbox") in checked and ("POST", "/signout") in checked
        for method, path in checked:
            if (method, path) in PUBLIC:
                continue
            page = await console.http.request(method, path)
            assert page.status_code == 303, (method, path, page.status_code)
            assert page.headers["location"] == "/signin", (method, path)
            api = await console.http.request(method, path, headers={"accept": "application/json"})
            assert api.status_code == 401, (method, path)
            assert api.json() == {"error": "sign in first"}
        for path in ("/no-such-page", "/releases/x/y/z", "/static/../app.py"):
            assert (await console.get(path)).status_code in (303, 404), path
            assert "Inbox" not in (await console.get(path)).text

    async def test_the_sign_in_page_is_served(self, console: Console) -> None:
        page = await console.get("/signin")
        assert page.status_code == 200 and "Sign in" in page.text
        assert 'data-testid="signout"' not in page.text


class TestCsrf:
    """A POST without the session's CSRF token is refused before it does anything."""

    async def test_sign_out_without_the_token_is_refused_and_the_session_stays(
        self, console: Console
    ) -> None:
        await console.dev_signin("sam.safety")
        for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
            refused = await console.post("/signout", data=data)
            assert refused.status_code == 403
            assert CSRF_REFUSED in shown(refused)
        assert (await console.get("/inbox")).status_code == 200, "still signed in"

    async def test_a_token_from_another_session_is_refused(self, console: Console) -> None:
        await console.dev_signin("sam.safety")
        theirs = await console.csrf("/inbox")
        async with console_for(console.settings) as other:
            await other.dev_signin("lee.legal")
            refused = await other.post("/signout", data={"csrf_token": theirs})
            assert refused.status_code == 403
            assert (await other.get("/inbox")).status_code == 200

    async def test_dev_sign_in_needs_the_token_and_a_json_post_the_header(
        self, console: Console
    ) -> None:
        refused = await console.post("/signin/dev", data={"person": "sam.safety"})
        assert refused.status_code == 403 and CSRF_REFUSED in shown(refused)
        assert (await console.get("/inbox")).headers["location"] == "/signin"
        await console.dev_signin("sam.safety")
        api = await console.post(
            "/signout", json={}, headers={"X-CSRF-Token": "wrong", "accept": "application/json"}
        )
        assert api.status_code == 403 and api.json() == {"error": CSRF_REFUSED}

    async def test_a_sign_in_replaces_the_session_and_its_token(self, console: Console) -> None:
        before = await console.csrf()
        await console.dev_signin("sam.safety")
        after = await console.csrf("/inbox")
        assert after != before, "a token seen before sign-in is worthless after it"


class TestDevSignIn:
    """Development sign-in only on loopback: the listener, the caller and the host name."""

    def test_the_console_refuses_to_start_with_it_off_loopback(self, tmp_path: Path) -> None:
        settings = gatekeeper_settings(tmp_path, "q", console={"dev_sign_in": True})
        from gatekeeper.console import ConsoleSettings

        with pytest.raises(ConfigError, match=r"dev_sign_in works only .* loopback"):
            ConsoleSettings.resolve(settings, host="0.0.0.0")
        with pytest.raises(ConfigError, match="loopback"):
            ConsoleSettings(
                gatekeeper=settings, host="10.0.0.5", session_secret=SECRET, dev_sign_in=True
            )
        assert ConsoleSettings.resolve(settings, host="::1").dev_sign_in

    def test_the_command_refuses_it_off_loopback(self, tmp_path: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
        env["GATEKEEPER_DATA_DIR"] = str(tmp_path)
        ran = subprocess.run(
            [sys.executable, "-m", "gatekeeper", "console", "--host", "0.0.0.0", "--dev-sign-in"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert ran.returncode == 3
        assert ran.stderr.strip().splitlines() == [
            "error: console: dev_sign_in works only while the console listens on loopback "
            "(127.0.0.1, ::1, localhost), not on '0.0.0.0'; configure OIDC sign-in"
        ]

    async def test_a_caller_off_loopback_cannot_use_it(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        async with console_for(console.settings, client_host="192.0.2.7") as remote:
            page = await remote.get("/signin")
            assert "Development sign-in works only from this machine" in page.text
            refused = await remote.post(
                "/signin/dev", data={"person": "sam.safety", "csrf_token": "x" * 43}
            )
            assert refused.status_code == 403
            assert "development sign-in works only on loopback" in refused.text
            assert (await remote.get("/inbox")).headers["location"] == "/signin"

    async def test_a_dev_session_carried_off_loopback_is_void(self, console: Console) -> None:
        await console.dev_signin("sam.safety")
        cookie = console.http.cookies["gk_session"]
        async with console_for(console.settings, client_host="192.0.2.7") as remote:
            remote.http.cookies.set("gk_session", cookie)
            assert (await remote.get("/inbox")).headers["location"] == "/signin"

    async def test_a_host_name_other_than_loopback_is_refused(self, console: Console) -> None:
        rebound = await console.get("/signin", headers={"host": "attacker.example:8400"})
        assert rebound.status_code == 421
        for host in ("127.0.0.1:8400", "localhost:8400", "[::1]:8400", "localhost"):
            assert (await console.get("/signin", headers={"host": host})).status_code == 200

    async def test_only_roster_people(self, console: Console) -> None:
        token = await console.csrf()
        refused = await console.post("/signin/dev", data={"person": "mallory", "csrf_token": token})
        assert refused.status_code == 400 and "not on the roster" in refused.text
        assert (await console.get("/inbox")).headers["location"] == "/signin"

    async def test_without_dev_sign_in_the_route_refuses(self, harness: ConsoleHarness) -> None:
        from gatekeeper.console.settings import OidcSettings

        settings = console_settings(
            harness.env.client,
            harness.data_dir,
            harness.releases.task_queue,
            dev_sign_in=False,
            oidc=OidcSettings("http://127.0.0.1:1", "console", "secret"),
        )
        async with console_for(settings) as console:
            page = await console.get("/signin")
            assert 'data-testid="dev-banner"' not in page.text and "dev-signin" not in page.text
            refused = await console.post(
                "/signin/dev", data={"person": factories.OPERATOR, "csrf_token": "x" * 43}
            )
            assert refused.status_code == 403
            assert "development sign-in works only on loopback" in refused.text


class TestHeaders:
    """Every page: a strict CSP, no framing, no caching; the session cookie is HttpOnly."""

    async def test_pages_carry_the_security_headers(self, console: Console) -> None:
        await console.dev_signin("sam.safety")
        for path in ("/signin", "/inbox", "/releases", "/orders"):
            page = await console.get(path)
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-content-type-options"] == "nosniff"
            assert "<script>" not in page.text, "no inline script on these pages"
        css = await console.get("/static/console.css")
        assert css.status_code == 200 and css.headers["x-frame-options"] == "DENY"

    async def test_the_cookie_is_secure_off_loopback_http(self, harness: ConsoleHarness) -> None:
        settings = console_settings(
            harness.env.client,
            harness.data_dir,
            harness.releases.task_queue,
            url="https://gatekeeper.example.com",
        )
        assert settings.secure_cookies
        async with console_for(settings, base_url="https://127.0.0.1:8400") as console:
            answer = await console.dev_signin("sam.safety")
            cookie = answer.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie

    async def test_a_tampered_session_cookie_is_anonymous(self, console: Console) -> None:
        await console.dev_signin("sam.safety")
        cookie = console.http.cookies["gk_session"]
        console.http.cookies.set(
            "gk_session", cookie[:-4] + ("AAAA" if cookie[-4:] != "AAAA" else "BBBB")
        )
        assert (await console.get("/inbox")).headers["location"] == "/signin"


class TestReturnAfterSignIn:
    """A link followed before signing in (from a notification) leads to its page after
    sign-in; only a page of this console, never another site."""

    async def test_the_page_asked_for_comes_after_sign_in(self, console: Console) -> None:
        asked = await console.get("/releases", params={"state": "held"})
        assert asked.headers["location"] == "/signin"
        answer = await console.dev_signin("sam.safety")
        assert answer.headers["location"] == "/releases?state=held"
        token = await console.csrf("/inbox")
        await console.post("/signout", data={"csrf_token": token})
        assert (await console.dev_signin("sam.safety")).headers["location"] == "/inbox"

    async def test_never_another_site(self, console: Console) -> None:
        # The path //evil.example/x (percent-encoded so the client keeps it a path).
        await console.get("/%2Fevil.example/x")
        assert (await console.dev_signin("sam.safety")).headers["location"] == "/inbox"

    def test_what_counts_as_a_page_of_the_console(self) -> None:
        from gatekeeper.console.auth import safe_next

        for good in ("/inbox", "/releases/r-1?x=1"):
            assert safe_next(good), good
        for bad in (
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "inbox",
            "/signin",
            "/auth/callback?code=x",
            "/x\r\nSet-Cookie: a=b",
            "/" + "a" * 600,
        ):
            assert not safe_next(bad), bad


class TestSessionLifetime:
    """A sign-in lasts SESSION_MAX_AGE from when it happened, however often it is used."""

    async def test_an_old_sign_in_is_over(
        self, console: Console, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from datetime import UTC, datetime, timedelta

        from gatekeeper.console import auth
        from gatekeeper.console.settings import SESSION_MAX_AGE

        await console.dev_signin("sam.safety")
        assert (await console.get("/inbox")).status_code == 200
        later = datetime.now(UTC) + timedelta(seconds=SESSION_MAX_AGE + 60)
        monkeypatch.setattr(auth, "_now", lambda: later)
        assert (await console.get("/inbox")).headers["location"] == "/signin"


class TestFailures:
    """A bug on a page is one line for the person (the trace goes to the log), with the same
    headers as every page."""

    async def test_a_failing_page(self, console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
        await console.dev_signin("sam.safety")

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(console.app.state.console.releases, "list", broken)
        page = await console.get("/releases")
        assert page.status_code == 500
        assert page.text == "error: the console failed on this page; its log says why"
        assert "secret internals" not in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"

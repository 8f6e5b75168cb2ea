"""The console's frame: development sign-in, sessions, the banner, the top bar, sign-out."""

from __future__ import annotations

from tests import factories
from tests.console.conftest import Console


class TestDevSignIn:
    """On loopback, development sign-in lets one pick a roster person; every page says so."""

    async def test_sign_in_see_the_inbox_and_sign_out(self, console: Console) -> None:
        page = await console.get("/signin")
        assert page.status_code == 200
        assert 'data-testid="dev-banner"' in page.text
        assert "sam.safety" in page.text

        answer = await console.dev_signin("sam.safety")
        assert answer.headers["location"] == "/inbox"
        cookie = answer.headers["set-cookie"]
        assert "gk_session=" in cookie and "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower()

        inbox = await console.get("/inbox")
        assert inbox.status_code == 200, inbox.text
        assert 'data-testid="dev-banner"' in inbox.text
        assert 'data-testid="signout"' in inbox.text
        assert "Sam" in inbox.text or "sam.safety" in inbox.text
        assert "safety" in inbox.text

        token = await console.csrf("/inbox")
        out = await console.post("/signout", data={"csrf_token": token})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert (await console.get("/inbox")).headers["location"] == "/signin"

    async def test_root_leads_to_the_inbox(self, console: Console) -> None:
        await console.dev_signin(factories.SUBMITTER)
        answer = await console.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/inbox"

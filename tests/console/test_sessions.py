"""Signing out ends the session for every copy of its cookie, on every console replica.

The session cookie is signed, not stored; what makes sign-out real is the session id (``sid``)
every sign-in puts in it, recorded as ended in the registry database at sign-out and read there on
every request. These tests copy a signed-in browser's cookie into a second client (a thief) and
into a second console app on the same registry database (a replica), sign out, and check that the
copy gets nothing: pages send it to sign-in, the decision routes send nothing and leave the
release as it was, and the cookie is cleared.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from itsdangerous import TimestampSigner

from gatekeeper.adapters.console_sessions import PRUNE_GRACE, EndedSessions
from gatekeeper.console.auth import DEV_ISSUER
from gatekeeper.console.settings import SESSION_MAX_AGE, OidcSettings
from gatekeeper.identity.keys import PrincipalKind
from gatekeeper.models import Policy
from gatekeeper.statements import public_key_b64
from tests import factories
from tests.console.conftest import (
    BASE_URL,
    SECRET,
    Console,
    ConsoleHarness,
    console_for,
    console_settings,
)
from tests.console.test_release_page import act, seen_on, unchanged
from tests.console.test_signin import Provider, run_server_in_thread, sign_in, subject
from tests.identity_fixtures import admin_key, write_key

#: The provider is written against authlib.jose, which authlib 1.9 deprecates (see test_signin).
pytestmark = [
    pytest.mark.filterwarnings("ignore::authlib.deprecate.AuthlibDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]

COOKIE = "gk_session"


def session_in(cookie: str) -> dict[str, Any]:
    """What a session cookie holds (Starlette's: base64 JSON, then timestamp and signature)."""
    found: dict[str, Any] = json.loads(base64.b64decode(cookie.split(".", 1)[0]))
    return found


def signed_cookie(session: dict[str, Any]) -> str:
    """A session cookie signed with the test console's secret (what Starlette would set)."""
    data = base64.b64encode(json.dumps(session).encode("utf-8"))
    return TimestampSigner(SECRET).sign(data).decode("utf-8")


def cleared(answer: httpx.Response) -> bool:
    """Whether ``answer`` replaces the session cookie with one that signs in nobody."""
    for header in answer.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name != COOKIE:
            continue
        value = rest.split(";", 1)[0]
        if value in ("", "null") or "expires=thu, 01 jan 1970" in header.lower():
            return True
        return "sid" not in session_in(value) and "person" not in session_in(value)
    return False


@asynccontextmanager
async def holding(console: Console, cookie: str) -> AsyncIterator[Console]:
    """Another browser (its own cookie jar) on the same console app, holding ``cookie``."""
    transport = httpx.ASGITransport(app=console.app, client=("127.0.0.1", 50999))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        found = Console(http, console.settings, console.app)
        hold(found, cookie)
        yield found


def hold(browser: Console, cookie: str) -> None:
    """``browser`` now holds ``cookie`` and nothing else (not the cookie the last answer set)."""
    browser.http.cookies.clear()
    # As the console's answers set it, so that they replace (or clear) it.
    browser.http.cookies.set(COOKIE, cookie, domain="127.0.0.1")


async def sign_out(console: Console) -> None:
    token = await console.csrf("/inbox")
    answer = await console.post("/signout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/signin", answer.text
    assert COOKIE not in console.http.cookies, "the browser's own cookie is cleared"


async def refused_everywhere(copy: Console, cookie: str, release_id: str, seen: str) -> None:
    """``cookie`` is no session on ``copy``: the page, act and prepare all answer "sign in",
    each clearing the cookie (set again before each try: the copy a thief keeps)."""
    csrf = session_in(cookie)["csrf"]
    hold(copy, cookie)
    page = await copy.get(f"/releases/{release_id}")
    assert page.status_code == 303 and page.headers["location"] == "/signin"
    assert cleared(page)
    hold(copy, cookie)
    acted = await copy.post(
        f"/releases/{release_id}/act",
        data={
            "csrf_token": csrf,
            "action": "approve",
            "role": "safety",
            "seen": seen,
            "mode": "gateway",
        },
    )
    assert acted.status_code == 303 and acted.headers["location"] == "/signin", acted.text
    assert cleared(acted), acted.headers.get_list("set-cookie")
    hold(copy, cookie)
    prepared = await copy.post(
        f"/releases/{release_id}/prepare",
        json={"action": "approve", "fields": {"role": "safety"}, "seen": seen},
        headers={"X-CSRF-Token": csrf, "accept": "application/json"},
    )
    assert prepared.status_code == 401 and prepared.json() == {"error": "sign in first"}
    assert cleared(prepared)
    hold(copy, cookie)
    missing = await copy.get("/no-such-page")
    assert missing.status_code == 303 and missing.headers["location"] == "/signin"


class TestDevSignOut:
    """A development sign-in's cookie, copied before signing out, is no session afterwards on
    the same console and on a replica; signing in again makes a new session id that works."""

    async def test_a_copied_cookie_is_refused_after_sign_out(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        status = await harness.start()
        rid = status.release_id
        await console.dev_signin("sam.safety")
        stolen = console.http.cookies[COOKIE]
        first_sid = session_in(stolen)["sid"]
        assert len(first_sid) >= 22, "at least 128 bits"
        async with holding(console, stolen) as thief, console_for(console.settings) as replica:
            hold(replica, stolen)
            # Before sign-out the copy is as good as the original, on both apps.
            page = await thief.get(f"/releases/{rid}")
            assert page.status_code == 200 and 'data-person="sam.safety"' in page.text
            assert (await replica.get(f"/releases/{rid}")).status_code == 200
            seen = seen_on(page.text)
            before = await harness.releases.status(rid)

            await sign_out(console)

            await refused_everywhere(thief, stolen, rid, seen)
            await refused_everywhere(replica, stolen, rid, seen)
            await unchanged(harness, before)

            # Signing in again: a new session id, which works (here and on the replica).
            await console.dev_signin("sam.safety")
            again = console.http.cookies[COOKIE]
            assert session_in(again)["sid"] != first_sid
            assert (await console.get("/inbox")).status_code == 200
            hold(replica, again)
            assert (await replica.get("/inbox")).status_code == 200
            await refused_everywhere(thief, stolen, rid, seen)

    async def test_sign_out_on_a_replica_ends_the_session_here(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        await console.dev_signin("lee.legal")
        cookie = console.http.cookies[COOKIE]
        async with console_for(console.settings) as replica:
            hold(replica, cookie)
            await sign_out(replica)
        answer = await console.get("/inbox")
        assert answer.status_code == 303 and answer.headers["location"] == "/signin"
        assert cleared(answer)

    async def test_every_sign_in_has_its_own_session_id(self, console: Console) -> None:
        sids = set()
        for person in ("sam.safety", "sam.safety", "lee.legal"):
            await console.dev_signin(person)
            sids.add(session_in(console.http.cookies[COOKIE])["sid"])
        assert len(sids) == 3


class TestCookieWithoutSessionId:
    """A cookie from before session ids (validly signed, but no ``sid``) is anonymous, and
    cleared; the same cookie with a sid is a session (so only the sid is missing)."""

    def dev_session(self, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        return {
            "person": "sam.safety",
            "issuer": DEV_ISSUER,
            "subject": "sam.safety",
            "auth_time": now - 60,
            "signed_in_at": now - 60,
            "csrf": "c" * 43,
            **extra,
        }

    async def test_no_sid_is_anonymous(self, console: Console) -> None:
        hold(console, signed_cookie(self.dev_session()))
        page = await console.get("/inbox")
        assert page.status_code == 303 and page.headers["location"] == "/signin"
        assert cleared(page)
        hold(console, signed_cookie(self.dev_session()))
        api = await console.get("/inbox", headers={"accept": "application/json"})
        assert api.status_code == 401 and api.json() == {"error": "sign in first"}
        assert cleared(api)

        hold(console, signed_cookie(self.dev_session(sid=secrets.token_urlsafe(24))))
        assert (await console.get("/inbox")).status_code == 200

    async def test_a_short_sid_is_anonymous(self, console: Console) -> None:
        hold(console, signed_cookie(self.dev_session(sid="x" * 8)))
        assert (await console.get("/inbox")).headers["location"] == "/signin"


# --- OpenID Connect and a gateway-attested decision ----------------------------------------------


@pytest.fixture
def provider() -> Iterator[Provider]:
    with run_server_in_thread() as server:
        yield Provider(f"http://localhost:{server.server_port}")


@pytest_asyncio.fixture(loop_scope="session")
async def oidc_gateway(
    harness: ConsoleHarness, provider: Provider, tmp_path: Path
) -> AsyncIterator[tuple[Console, Policy, str]]:
    """A console with OIDC sign-in (no development sign-in) and a gateway key registered as a
    gateway, a policy that accepts gateway-attested approvals, and an OIDC subject linked to
    sam.safety (returned)."""
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "console-gateway.pem"
    write_key(key_file, key)
    registry = harness.adapters.identity
    admin = await asyncio.to_thread(admin_key, registry, harness.data_dir / "admin-keys")
    sub = subject()
    await asyncio.to_thread(
        lambda: registry.register(
            principal="console",
            principal_kind=PrincipalKind.GATEWAY,
            public_key=public_key_b64(key),
            admin_key=admin,
        )
    )
    await asyncio.to_thread(
        lambda: registry.link_sso(
            "sam.safety", issuer=provider.issuer, subject=sub, admin_key=admin
        )
    )
    settings = console_settings(
        harness.env.client,
        harness.data_dir,
        harness.releases.task_queue,
        dev_sign_in=False,
        oidc=OidcSettings(provider.issuer, "gatekeeper-console", "console-secret"),
        console={"gateway_key": str(key_file)},
    )
    async with console_for(settings) as console:
        yield console, factories.policy(version="gw", gateway_attestation=["approve"]), sub


class TestOidcSignOut:
    """Where the policy accepts gateway-attested decisions, a copy of an OIDC session's cookie
    gets the console to attest an approval while the session lasts; after sign-out the copy
    gets nothing attested, on this console or a replica, and the release stays as it was."""

    async def test_a_copied_cookie_gets_nothing_attested_after_sign_out(
        self,
        oidc_gateway: tuple[Console, Policy, str],
        provider: Provider,
        harness: ConsoleHarness,
    ) -> None:
        console, policy, sub = oidc_gateway
        done = await sign_in(console, provider, sub)
        assert done.status_code == 303, done.text
        stolen = console.http.cookies[COOKIE]
        assert session_in(stolen)["issuer"] == provider.issuer and session_in(stolen)["sid"]
        first = await harness.start(policy=policy)
        second = await harness.start(policy=policy)
        async with holding(console, stolen) as thief, console_for(console.settings) as replica:
            hold(replica, stolen)
            assert (await replica.get(f"/releases/{second.release_id}")).status_code == 200
            # While the session lasts, the copy is as potent as the original: an attested
            # approval of the first release.
            page = (await thief.get(f"/releases/{first.release_id}")).text
            line = await act(
                thief,
                first.release_id,
                {"action": "approve", "role": "safety", "seen": seen_on(page), "mode": "gateway"},
            )
            assert line.startswith("sam.safety approved internal_review as safety"), line

            hold(thief, stolen)
            seen = seen_on((await thief.get(f"/releases/{second.release_id}")).text)
            before = await harness.releases.status(second.release_id)

            await sign_out(console)

            await refused_everywhere(thief, stolen, second.release_id, seen)
            await refused_everywhere(replica, stolen, second.release_id, seen)
            await unchanged(harness, before)

            # Signing in again through the provider: a new sid, which works.
            await sign_in(console, provider, sub)
            again = console.http.cookies[COOKIE]
            assert session_in(again)["sid"] != session_in(stolen)["sid"]
            assert (await console.get(f"/releases/{second.release_id}")).status_code == 200
            await refused_everywhere(thief, stolen, second.release_id, seen)


# --- the record of ended sessions ----------------------------------------------------------------


class TestEndedSessionsRecord:
    """Each ended session keeps a row until its session would have expired anyway (plus a
    grace for replicas' clocks); rows past it are pruned whenever a session is ended."""

    def test_expired_rows_are_pruned_on_insert(self, database_url: str) -> None:
        url = database_url
        now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        clock = [now]
        with EndedSessions(url, clock=lambda: clock[0]) as store:
            old, recent, fresh = ("o" * 32, "r" * 32, "f" * 32)
            store.end(old, expires_at=now + timedelta(hours=1))
            store.end(recent, expires_at=now + timedelta(hours=3))
            assert store.count() == 2 and store.ended(old) and store.ended(recent)

            # Two hours later, old's session is over, but within the grace: kept.
            clock[0] = now + timedelta(hours=1) + PRUNE_GRACE / 2
            store.end(fresh, expires_at=clock[0] + timedelta(seconds=SESSION_MAX_AGE))
            assert store.count() == 3 and store.ended(old)

            # Past the grace: pruned at the next sign-out; the others stay.
            clock[0] = now + timedelta(hours=1) + PRUNE_GRACE + timedelta(seconds=1)
            store.end(fresh, expires_at=clock[0] + timedelta(seconds=SESSION_MAX_AGE))
            assert not store.ended(old)
            assert store.ended(recent) and store.ended(fresh)
            assert store.count() == 2, "ending a session twice keeps one row"

    async def test_sign_out_records_when_the_session_would_expire(self, console: Console) -> None:
        from gatekeeper.adapters.registry.tables import console_sessions_ended as table

        await console.dev_signin("sam.safety")
        session = session_in(console.http.cookies[COOKIE])
        await sign_out(console)
        store = await asyncio.to_thread(console.app.state.console.ended_sessions)

        def row() -> Any:
            with store._read("test") as connection:
                return connection.execute(
                    sa.select(table).where(table.c.sid == session["sid"])
                ).one()

        found = await asyncio.to_thread(row)
        expected = datetime.fromtimestamp(session["signed_in_at"] + SESSION_MAX_AGE, UTC)
        assert found.expires_at == expected

    async def test_each_request_is_one_primary_key_read_off_the_event_loop(
        self, console: Console
    ) -> None:
        await console.dev_signin("sam.safety")
        assert (await console.get("/inbox")).status_code == 200
        store = await asyncio.to_thread(console.app.state.console.ended_sessions)
        seen: list[tuple[str, int]] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "console_sessions_ended" in statement:
                seen.append((statement, threading.get_ident()))

        engine = store._engine
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            assert (await console.get("/inbox")).status_code == 200
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        assert len(seen) == 1, seen
        statement, thread = seen[0]
        assert statement.lstrip().upper().startswith("SELECT")
        assert thread != threading.get_ident(), "read in a thread, not on the event loop"

        def plan() -> str:
            with engine.connect() as connection:
                rows = connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, ("x" * 32,)
                ).all()
            return " ".join(str(r[-1]) for r in rows)

        detail = await asyncio.to_thread(plan)
        assert "SEARCH" in detail and "(sid=?)" in detail, detail

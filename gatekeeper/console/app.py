"""The console's ASGI app: :func:`create_app` wires sessions, security headers, the error pages
and every page's routes.

Security model (docs/console.md): nothing but the sign-in page (and its stylesheet) is served
to an anonymous visitor; every POST is CSRF-checked; pages are never cached, framed or allowed
to run inline script; while development sign-in is on, requests naming a host other than
loopback are refused (no DNS rebinding onto a console where anyone can be anyone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError

from gatekeeper.console import auth, oidc, pages, passkeys, release_page
from gatekeeper.console.auth import NotSignedIn, Refused
from gatekeeper.console.context import STATIC, ConsoleContext, context
from gatekeeper.console.settings import SESSION_MAX_AGE, ConsoleSettings
from gatekeeper.console.views import one_line
from gatekeeper.egress import is_loopback
from gatekeeper.errors import (
    ConnectionFailed,
    DecisionRefused,
    GatekeeperError,
    InputError,
    NoAnswer,
    ReleaseNotFound,
)
from gatekeeper.orders import Orders
from gatekeeper.releases import Releases

log = structlog.get_logger(__name__)

SESSION_COOKIE = "gk_session"

#: Scripts only from the console itself (static files; passkeys need no inline script), no
#: framing, forms only back to the console.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds the security headers to every response, ``Cache-Control: no-store`` to all but the
    static files, and (while dev sign-in is on) refuses requests for a non-loopback host."""

    def __init__(self, app: ASGIApp, *, loopback_hosts_only: bool) -> None:
        self.app = app
        self.loopback_hosts_only = loopback_hosts_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_hosts_only and not is_loopback(_host_name(scope)):
            refused = PlainTextResponse(
                "refused: this console has development sign-in on; reach it through "
                "127.0.0.1 or localhost",
                status_code=421,
            )
            await refused(scope, receive, self._sending(send, static=False))
            return
        static = str(scope.get("path", "")).startswith("/static/")
        started = False
        sending = self._sending(send, static=static)

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await sending(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            # A bug: one line for the person, the trace in the log (never in the page).
            log.exception("console request failed", path=scope.get("path"))
            if started:
                raise
            failed = PlainTextResponse(
                "error: the console failed on this page; its log says why", status_code=500
            )
            await failed(scope, receive, sending)

    @staticmethod
    def _sending(send: Send, *, static: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"cache-control", b"pragma")
                ]
                headers += SECURITY_HEADERS
                headers.append((b"cache-control", b"no-cache" if static else b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def _host_name(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"host":
            host: str = bytes(value).decode("latin-1")
            if host.startswith("["):
                return host[1:].split("]", 1)[0]
            return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return ""


def wants_json(request: Request) -> bool:
    """Whether the caller is the console's own script (JSON in or out), not a page load."""
    accept = request.headers.get("accept", "")
    kind = request.headers.get("content-type", "")
    return kind.startswith("application/json") or (
        "application/json" in accept and "text/html" not in accept
    )


def status_of(err: GatekeeperError) -> int:
    if isinstance(err, InputError):
        return 400
    if isinstance(err, ReleaseNotFound):
        return 404
    if isinstance(err, DecisionRefused):
        return 409
    if isinstance(err, NoAnswer | ConnectionFailed):
        return 503
    return 500


def create_app(settings: ConsoleSettings) -> FastAPI:
    """The console app for ``settings``.

    With ``settings.client`` the app uses that Temporal client; otherwise it connects when it
    starts (the lifespan), like the CLI, from the environment.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.console is None:
            from gatekeeper.client import connect

            client = await connect(settings.gatekeeper)
            app.state.console = _context(settings, client)
        try:
            yield
        finally:
            found = app.state.console
            if isinstance(found, ConsoleContext):
                found.close()

    app = FastAPI(
        title="Gatekeeper console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.console = _context(settings, settings.client) if settings.client else None
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(auth.router)
    app.include_router(oidc.router)
    app.include_router(pages.router)
    app.include_router(release_page.router)
    app.include_router(passkeys.router)
    _error_pages(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeaders, loopback_hosts_only=settings.dev_sign_in)
    return app


def _context(settings: ConsoleSettings, client: Any) -> ConsoleContext:
    queue = settings.gatekeeper.task_queue
    return ConsoleContext(
        settings=settings,
        releases=Releases(client, queue),
        orders=Orders(client, queue),
        oidc=oidc.oidc_client(settings.oidc) if settings.oidc else None,
    )


def _error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": "sign in first"}, status_code=401)
        if request.method == "GET":
            auth.remember_page(request)  # a link in a notification leads there after sign-in
        return RedirectResponse("/signin", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, err: Exception) -> Response:
        assert isinstance(err, Refused)
        return _problem(request, err.message, err.status_code)

    @app.exception_handler(GatekeeperError)
    async def gatekeeper_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, GatekeeperError)
        return _problem(request, f"error: {one_line(err)}", status_of(err))

    @app.exception_handler(RPCError)
    async def temporal_error(request: Request, err: Exception) -> Response:
        # A call the client API does not translate (a visibility listing): say so in one line.
        return _problem(
            request, f"error: Temporal did not answer the console ({one_line(err)})", 503
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, StarletteHTTPException)
        try:
            await auth.current_person(request)  # a signed-out copy of a cookie is anonymous too
        except NotSignedIn:  # anonymous: nothing but the sign-in page
            # Not remembered as the page to return to: no such page (the browser's own
            # /favicon.ico would otherwise be where every sign-in leads).
            if wants_json(request):
                return JSONResponse({"error": "sign in first"}, status_code=401)
            return RedirectResponse("/signin", status_code=303)
        return _problem(request, f"error: {err.detail}", err.status_code)


def _problem(request: Request, message: str, status_code: int) -> Response:
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status_code)
    ctx = context(request)
    person = request.scope.get("gk_person")
    return ctx.render(
        request, "problem.html", {"message": message}, person=person, status_code=status_code
    )

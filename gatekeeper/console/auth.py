"""Who is signed in, and the checks every request passes: sessions, CSRF, sign-in and out.

A session is Starlette's signed cookie ``gk_session`` (HttpOnly, SameSite=Lax, Secure unless the
console is plain http on loopback) holding ``person``, ``issuer``, ``subject``, ``auth_time``
``csrf`` and ``sid``, a random session id (192 bits). It is replaced whole at every sign-in, so
a session planted before sign-in carries nothing over. Signing out records the ``sid`` as ended
in the registry database (:mod:`gatekeeper.adapters.console_sessions`); every request reads it
there (one primary-key read, in a thread), so a copy of the cookie taken before signing out is
no session afterwards, on every console replica sharing that database. A cookie without a
``sid`` (made before session ids existed) is no session either.

Sign-in is OpenID Connect (:mod:`gatekeeper.console.oidc`): the provider's ``(iss, sub)`` must
be linked to a person in the identity registry. For development, ``dev_sign_in`` lets anyone
pick a roster person: only when the console listens on loopback (checked at start), only for
requests from loopback, and every page says so.

Every POST carries the session's CSRF token (form field ``csrf_token``, or header
``X-CSRF-Token`` for JSON); a missing or wrong one is refused before anything else happens.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from gatekeeper.adapters.console_sessions import MAX_SID
from gatekeeper.console.context import context
from gatekeeper.console.settings import SESSION_MAX_AGE
from gatekeeper.egress import is_loopback

#: The issuer recorded for a development sign-in (never a URL, so never an OIDC issuer).
DEV_ISSUER = "dev-sign-in"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: What a refused CSRF check says.
CSRF_REFUSED = "refused: the form's CSRF token is missing or wrong; reload the page"
DEV_REFUSED = "refused: development sign-in works only on loopback"
#: Bytes of randomness in a session id (``secrets.token_urlsafe``: 32 characters).
SID_BYTES = 24

router = APIRouter()


class NotSignedIn(Exception):
    """The request needs a signed-in person and has none (pages: 303 /signin; API: 401)."""


class Refused(Exception):
    """The request is refused with a one-line reason (a 4xx page, or JSON for the API)."""

    def __init__(self, message: str, status_code: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class SignedInPerson:
    """The person a request acts for, with their roles on the roster of the default policy."""

    id: str
    name: str
    roles: tuple[str, ...]
    issuer: str
    subject: str
    auth_time: datetime
    on_roster: bool
    #: The e-mail the provider gave at sign-in (OIDC only), if any.
    email: str | None = None

    @property
    def dev(self) -> bool:
        """Signed in through development sign-in (no identity provider involved)."""
        return self.issuer == DEV_ISSUER


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use, also for the sign-in page's forms)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, form: FormData | dict[str, Any] | None = None) -> None:
    """Refuse (403) unless the request carries the session's CSRF token: the form field
    ``csrf_token`` or the header ``X-CSRF-Token``. Compared in constant time.

    Raises:
        Refused: missing or wrong, or the session has none.
    """
    expected = request.session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and form is not None:
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if (
        not isinstance(expected, str)
        or not sent
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise Refused(CSRF_REFUSED, 403)


async def checked_form(request: Request) -> FormData:
    """The POSTed form, after its CSRF check (see :func:`check_csrf`)."""
    form = await request.form()
    check_csrf(request, form)
    return form


#: The longest page address kept to return to after sign-in.
MAX_NEXT = 500


def remember_page(request: Request) -> None:
    """Keep the page an anonymous visitor asked for (a link in a notification), to return to
    it after sign-in. Only a path of this console: never another site (``//host``)."""
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    if safe_next(path):
        request.session["next"] = path


def safe_next(path: object) -> bool:
    """Whether ``path`` is a page of this console: one leading slash, no scheme or host."""
    return (
        isinstance(path, str)
        and len(path) <= MAX_NEXT
        and path.startswith("/")
        and not path.startswith("//")
        and "\\" not in path
        and not any(ord(c) < 0x20 for c in path)
        and not path.startswith(("/signin", "/auth/", "/static/"))
    )


def after_sign_in(request: Request) -> str:
    """Where a sign-in leads: the page asked for before it, else the Inbox."""
    wanted = request.session.get("next")
    return wanted if isinstance(wanted, str) and safe_next(wanted) else "/inbox"


def begin_session(
    request: Request, *, person: str, issuer: str, subject: str, auth_time: datetime
) -> None:
    """Replace the session with a fresh one for ``person`` (a new CSRF token too)."""
    request.session.clear()
    request.session.update(
        {
            "person": person,
            "issuer": issuer,
            "subject": subject,
            "auth_time": int(auth_time.timestamp()),
            "signed_in_at": int(_now().timestamp()),
            "csrf": secrets.token_urlsafe(32),
            "sid": secrets.token_urlsafe(SID_BYTES),
        }
    )


def session_id(session: dict[str, Any]) -> str | None:
    """The session's id, if it has a well-formed one (a cookie from before session ids: none)."""
    sid = session.get("sid")
    if isinstance(sid, str) and 32 <= len(sid) <= MAX_SID:
        return sid
    return None


def session_expires(session: dict[str, Any]) -> datetime:
    """When the session's sign-in is over anyway (:data:`SESSION_MAX_AGE` after it)."""
    now = _now()
    signed_in_at = session.get("signed_in_at")
    since = (
        datetime.fromtimestamp(signed_in_at, UTC)
        if isinstance(signed_in_at, int) and signed_in_at <= now.timestamp()
        else now
    )
    return since + timedelta(seconds=SESSION_MAX_AGE)


def _now() -> datetime:
    return datetime.now(UTC)


def client_is_loopback(request: Request) -> bool:
    return request.client is not None and is_loopback(request.client.host)


async def current_person(request: Request) -> SignedInPerson:
    """The signed-in person (a FastAPI dependency); anonymous requests raise :class:`NotSignedIn`.

    A development session counts only while dev sign-in is on and the request comes from
    loopback; an OIDC session only while its (issuer, subject) is still linked to the person;
    any session only while its ``sid`` has not been signed out (read from the registry on every
    request). A session that does not count is cleared (the response drops the cookie).
    """
    ctx = context(request)
    session = request.session
    person = session.get("person")
    issuer = session.get("issuer")
    subject = session.get("subject")
    auth_time = session.get("auth_time")
    if not (
        isinstance(person, str)
        and isinstance(issuer, str)
        and isinstance(subject, str)
        and isinstance(auth_time, int)
    ):
        raise NotSignedIn
    signed_in_at = session.get("signed_in_at")
    since = signed_in_at if isinstance(signed_in_at, int) else auth_time
    if _now().timestamp() - since > SESSION_MAX_AGE:
        session.clear()  # a sign-in lasts a working day, however busy (the cookie slides)
        raise NotSignedIn
    dev_void = not ctx.settings.dev_sign_in or not client_is_loopback(request)
    if issuer == DEV_ISSUER and dev_void:
        session.clear()
        raise NotSignedIn
    sid = session_id(session)
    if sid is None or await ctx.session_ended(sid):
        session.clear()  # signed out (on any replica), or a cookie from before session ids
        raise NotSignedIn
    if issuer != DEV_ISSUER and await ctx.sso_person(issuer, subject) != person:
        session.clear()  # unlinked (or linked to someone else) since the sign-in
        raise NotSignedIn
    policy = await ctx.roster()
    found = policy.person(person)
    signed_in = SignedInPerson(
        id=person,
        name=found.name if found else person,
        roles=tuple(found.roles) if found else (),
        issuer=issuer,
        subject=subject,
        auth_time=datetime.fromtimestamp(auth_time, UTC),
        on_roster=found is not None,
        email=session.get("email") if isinstance(session.get("email"), str) else None,
    )
    request.scope["gk_person"] = signed_in  # error pages show the top bar too
    return signed_in


# --- routes ---------------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    ctx = context(request)
    policy = await ctx.roster() if ctx.settings.dev_sign_in else None
    return ctx.render(
        request,
        "signin.html",
        {
            "oidc": ctx.settings.oidc is not None,
            "issuer": ctx.settings.oidc.issuer if ctx.settings.oidc else None,
            "roster": list(policy.roster) if policy else [],
            "dev_here": ctx.settings.dev_sign_in and client_is_loopback(request),
        },
        person=None,
    )


@router.post("/signin/dev")
async def dev_signin(request: Request) -> Response:
    ctx = context(request)
    if not ctx.settings.dev_sign_in or not client_is_loopback(request):
        raise Refused(DEV_REFUSED, 403)
    form = await checked_form(request)
    chosen = form.get("person")
    policy = await ctx.roster()
    if not isinstance(chosen, str) or policy.person(chosen) is None:
        raise Refused(
            f"refused: {str(chosen)[:64]!r} is not on the roster of policy {policy.policy_id}", 400
        )
    target = after_sign_in(request)
    begin_session(
        request, person=chosen, issuer=DEV_ISSUER, subject=chosen, auth_time=datetime.now(UTC)
    )
    return RedirectResponse(target, status_code=303)


@router.post("/signout")
async def signout(request: Request) -> Response:
    if "person" not in request.session:
        raise NotSignedIn
    await checked_form(request)
    sid = session_id(request.session)
    if sid is not None:
        # Every copy of this cookie, on every replica, is no session from now on. Recorded
        # before the cookie is cleared: if the registry cannot record it, the page says so and
        # the person is still signed in (never told "signed out" when a copy would still work).
        await context(request).end_session(sid, session_expires(request.session))
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)

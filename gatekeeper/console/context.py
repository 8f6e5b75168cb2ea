"""What every request handler of the console shares: settings, the client APIs, the roster, the
identity registry, and the templates. One per app, on ``app.state.console``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from gatekeeper.console import views
from gatekeeper.console.settings import ConsoleSettings
from gatekeeper.models.policy import Policy
from gatekeeper.orders import Orders
from gatekeeper.policy import load_default_policy
from gatekeeper.releases import Releases

if TYPE_CHECKING:
    from datetime import datetime

    from gatekeeper.adapters.console_sessions import EndedSessions
    from gatekeeper.console.auth import SignedInPerson
    from gatekeeper.identity.registry import IdentityRegistry

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: How long the roster and an SSO link are believed before they are read again (seconds).
ROSTER_TTL = 10.0
SSO_TTL = 30.0


def templates() -> Jinja2Templates:
    """The console's templates: autoescaped always (text people or specs wrote is never marked
    safe), control characters neutralised in everything a template prints, undefined names an
    error rather than an empty string."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=views.finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    views.install_filters(environment)
    return Jinja2Templates(env=environment)


@dataclass
class ConsoleContext:
    """The console's shared state. The registry and policy store are synchronous (SQLAlchemy):
    every read of them runs in a thread, never on the event loop."""

    settings: ConsoleSettings
    releases: Releases
    orders: Orders
    #: The authlib client of the OIDC provider (``None``: no OIDC sign-in).
    oidc: Any = None
    templates: Jinja2Templates = field(default_factory=templates)
    _roster: tuple[float, Policy] | None = None
    _sso: dict[tuple[str, str], tuple[float, str | None]] = field(default_factory=dict)
    _identity: IdentityRegistry | None = None
    _sessions: EndedSessions | None = None

    # --- roster -------------------------------------------------------------------------------

    async def roster(self) -> Policy:
        """The policy whose roster says who people are and which roles they hold: the policy
        store's default (the one new releases run under), else the packaged default."""
        now = time.monotonic()
        if self._roster is not None and now - self._roster[0] < ROSTER_TTL:
            return self._roster[1]
        policy = await asyncio.to_thread(self._read_roster)
        self._roster = (now, policy)
        return policy

    def _read_roster(self) -> Policy:
        settings = self.settings.gatekeeper
        url = settings.effective_registry_url
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
            return load_default_policy().policy
        from gatekeeper.adapters.policy_store import PolicyStore

        with PolicyStore(url) as store:
            installed = store.default()
        return installed.policy if installed else load_default_policy().policy

    # --- identity -----------------------------------------------------------------------------

    def identity(self) -> IdentityRegistry:
        """The identity registry (opened on first use; call from a thread)."""
        if self._identity is None:
            from gatekeeper.identity.registry import IdentityRegistry

            self._identity = IdentityRegistry(self.settings.gatekeeper.effective_registry_url)
        return self._identity

    async def sso_person(self, issuer: str, subject: str, *, fresh: bool = False) -> str | None:
        """The person the identity registry links (issuer, subject) to; ``None`` if nobody.
        Believed for :data:`SSO_TTL` seconds (``fresh``: read now)."""
        key = (issuer, subject)
        now = time.monotonic()
        cached = self._sso.get(key)
        if cached is not None and not fresh and now - cached[0] < SSO_TTL:
            return cached[1]
        person = await asyncio.to_thread(self._read_sso, issuer, subject)
        self._sso[key] = (now, person)
        return person

    def _read_sso(self, issuer: str, subject: str) -> str | None:
        return self.identity().sso_person(issuer, subject)

    # --- sessions ended by signing out ---------------------------------------------------------

    def ended_sessions(self) -> EndedSessions:
        """The registry's record of sessions ended by signing out (opened on first use; call
        from a thread). Shared by every console replica on the same registry database."""
        if self._sessions is None:
            from gatekeeper.adapters.console_sessions import EndedSessions

            self._sessions = EndedSessions(self.settings.gatekeeper.effective_registry_url)
        return self._sessions

    async def session_ended(self, sid: str) -> bool:
        """Whether the session ``sid`` was signed out (on any replica): read on every request,
        in a thread, never believed from memory."""
        return await asyncio.to_thread(self._read_ended, sid)

    def _read_ended(self, sid: str) -> bool:
        return self.ended_sessions().ended(sid)

    async def end_session(self, sid: str, expires_at: datetime) -> None:
        """Record ``sid`` as signed out until ``expires_at`` (in a thread)."""
        await asyncio.to_thread(self._end, sid, expires_at)

    def _end(self, sid: str, expires_at: datetime) -> None:
        self.ended_sessions().end(sid, expires_at=expires_at)

    def close(self) -> None:
        if self._identity is not None:
            self._identity.close()
            self._identity = None
        if self._sessions is not None:
            self._sessions.close()
            self._sessions = None

    # --- pages --------------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        template: str,
        values: Mapping[str, Any],
        *,
        person: SignedInPerson | None,
        status_code: int = 200,
    ) -> HTMLResponse:
        """A page: ``template`` with ``values``, the signed-in person, the CSRF token and the
        development banner's flag (every page shows it while dev sign-in is on)."""
        from gatekeeper.console.auth import csrf_token

        page = {
            "request": request,
            "me": person,
            "csrf": csrf_token(request),
            "dev_sign_in": self.settings.dev_sign_in,
            "flash": request.session.pop("flash", None),
            **values,
        }
        return self.templates.TemplateResponse(request, template, page, status_code=status_code)


def context(request: Request) -> ConsoleContext:
    """The app's :class:`ConsoleContext`."""
    found = request.app.state.console
    if not isinstance(found, ConsoleContext):
        raise RuntimeError("the console app has no context (create it with create_app)")
    return found

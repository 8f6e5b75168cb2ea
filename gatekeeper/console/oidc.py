"""Sign-in by OpenID Connect (authorization code flow with PKCE, through authlib).

The provider is found by discovery from the configured issuer. authlib keeps the ``state``,
``nonce`` and PKCE verifier in the session and checks them on the way back, then verifies the ID
token (signature against the provider's keys, ``iss`` equal to the configured issuer, ``aud``
our client id, expiry, nonce). The token's ``(iss, sub)`` must then be linked to a person in the
identity registry (``gatekeeper keys sso link``); nobody else gets a session.
"""

from __future__ import annotations

import logging
import warnings
from datetime import UTC, datetime
from typing import Any

import authlib.deprecate  # type: ignore[import-untyped]  # installs authlib's own filter first

with warnings.catch_warnings():
    # authlib 1.9 announces its move from httpx to httpx2 on import; nothing for us to do yet.
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
        OAuth,
        OAuthError,
    )
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gatekeeper.console.auth import Refused, after_sign_in, begin_session
from gatekeeper.console.context import context
from gatekeeper.console.settings import OidcSettings

log = logging.getLogger(__name__)

router = APIRouter()
#: The name the provider is registered under in authlib (and its session keys).
PROVIDER = "oidc"


def discovery_url(issuer: str) -> str:
    """Where an issuer publishes its metadata (OpenID Connect Discovery 1.0, section 4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def oidc_client(oidc: OidcSettings) -> Any:
    """An authlib client for the provider (metadata loaded on first use, then kept)."""
    oauth = OAuth()
    oauth.register(
        name=PROVIDER,
        client_id=oidc.client_id,
        client_secret=oidc.client_secret,
        server_metadata_url=discovery_url(oidc.issuer),
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )
    return oauth.create_client(PROVIDER)


def unlinked(subject: str, issuer: str) -> str:
    """What an identity nobody is linked to reads."""
    return (
        f"no Gatekeeper person is linked to {subject} at {issuer}; ask an identity admin to run "
        f"`gatekeeper keys sso link PERSON --issuer {issuer} --subject {subject} --as ADMIN`"
    )


@router.get("/auth/login")
async def login(request: Request) -> Response:
    ctx = context(request)
    if ctx.settings.oidc is None or ctx.oidc is None:
        raise Refused("refused: this console has no OpenID Connect provider configured", 404)
    try:
        redirect: Response = await ctx.oidc.authorize_redirect(
            request, f"{ctx.settings.url}/auth/callback"
        )
    except Exception as err:  # discovery failed: the provider is down or misconfigured
        log.warning("oidc discovery failed: %s", err)
        raise Refused(
            f"error: the sign-in provider {ctx.settings.oidc.issuer} did not answer; try again "
            "later",
            502,
        ) from None
    return redirect


@router.get("/auth/callback")
async def callback(request: Request) -> Response:
    ctx = context(request)
    oidc = ctx.settings.oidc
    if oidc is None or ctx.oidc is None:
        raise Refused("refused: this console has no OpenID Connect provider configured", 404)
    try:
        token = await ctx.oidc.authorize_access_token(
            request,
            claims_options={
                "iss": {"essential": True, "values": [oidc.issuer]},
                "sub": {"essential": True},
            },
        )
    except OAuthError as err:
        raise Refused(
            f"refused: sign-in failed ({_oauth_reason(err)}); start again from the sign-in page",
            400,
        ) from None
    except Exception as err:  # a bad ID token (signature, audience, expiry) or transport
        log.warning("oidc callback failed: %s: %s", type(err).__name__, err)
        raise Refused(
            "refused: sign-in failed (the provider's answer did not verify); start again from "
            "the sign-in page",
            400,
        ) from None
    claims = token.get("userinfo")
    if not claims:
        raise Refused("refused: sign-in failed (the provider returned no ID token)", 400)
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    person = await ctx.sso_person(issuer, subject, fresh=True)
    if person is None:
        raise Refused(f"refused: {unlinked(subject, issuer)}", 403)
    auth_time = claims.get("auth_time") or claims.get("iat")
    target = after_sign_in(request)
    begin_session(
        request,
        person=person,
        issuer=issuer,
        subject=subject,
        auth_time=datetime.fromtimestamp(int(auth_time), UTC) if auth_time else datetime.now(UTC),
    )
    email = claims.get("email")
    if isinstance(email, str):
        request.session["email"] = email[:320]
    return RedirectResponse(target, status_code=303)


def _oauth_reason(err: OAuthError) -> str:
    reason = err.error or "error"
    if reason == "mismatching_state":
        return "the sign-in's state does not match this browser's; CSRF protection"
    text = f"{reason}: {err.description}" if err.description else reason
    return " ".join(text.split())[:200]

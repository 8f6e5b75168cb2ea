"""``gatekeeper temporal-auth``: the signing key and bearer tokens of a cluster whose Temporal
server runs the JWT authorizer (the compose stack; docs/deployment.md).

``keygen`` makes the EC P-256 signing key and adds its public half to the key set the server
reads; ``issue`` signs a token for a worker, a gateway or a person; ``retire`` removes a key from
the key set, which voids every token it signed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from gatekeeper import temporal_auth
from gatekeeper.cli import common
from gatekeeper.text import for_markup

app = typer.Typer(
    help="Signing key and bearer tokens for a Temporal server that authorizes with JWTs.",
    no_args_is_help=True,
)

KEY_OPTION = typer.Option(..., "--key", help="The signing key's PEM file (private; mode 600).")
JWKS_OPTION = typer.Option(
    Path("deploy/temporal/jwks/jwks.json"),
    "--jwks",
    help="The key set the server reads (public keys only).",
)


@app.command()
def keygen(
    key: Path = KEY_OPTION,
    jwks: Path = JWKS_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Create a signing key (never overwriting one) and add its public key to the key set."""
    private = temporal_auth.generate_signing_key()
    # Read the key set first: a malformed one stops us before a key is written.
    temporal_auth.read_jwks(jwks)
    temporal_auth.write_private_key(key, private)
    kid = temporal_auth.add_key(jwks, private.public_key())
    if json_:
        common.print_json({"key": str(key), "jwks": str(jwks), "kid": kid})
        return
    common.console.print(f"[green]✔[/] signing key written to {for_markup(key)} (mode 600)")
    common.console.print(f"[green]✔[/] public key {for_markup(kid)} added to {for_markup(jwks)}")


@app.command()
def issue(
    ctx: typer.Context,
    key: Path = KEY_OPTION,
    subject: str = typer.Option(
        ..., "--subject", help="Who the token is for (worker-1, review-gateway, a person's id)."
    ),
    role: str = typer.Option(
        ...,
        "--role",
        help="reader (people), writer (workers, gateways) or admin (the setup job).",
    ),
    namespace: list[str] | None = typer.Option(
        None,
        "--namespace",
        help="Namespace the role applies to (repeatable; env TEMPORAL_NAMESPACE).",
    ),
    ttl: str = typer.Option("12h", "--ttl", help="Lifetime: 90m, 12h, 30d (at most 90d)."),
    audience: str | None = typer.Option(
        None,
        "--audience",
        help=f"The server's audience (env TEMPORAL_JWT_AUDIENCE, default {temporal_auth.DEFAULT_AUDIENCE}).",
    ),
    issuer: str | None = typer.Option(None, "--issuer", help="Optional `iss` claim."),
    out: Path | None = typer.Option(
        None, "--out", help="Write the token to this file (mode 600) instead of printing it."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Sign a bearer token: `sub`, `permissions` (<namespace>:<read|write|admin>), `aud`, `exp`."""
    settings = common.settings(ctx)
    namespaces = namespace or [settings.env.get("TEMPORAL_NAMESPACE") or "default"]
    lifetime = temporal_auth.parse_ttl(ttl)
    now = datetime.now(UTC)
    token = temporal_auth.issue_token(
        temporal_auth.load_signing_key(key),
        subject=subject,
        role=role,
        namespaces=namespaces,
        ttl=lifetime,
        now=now,
        audience=audience
        or settings.env.get("TEMPORAL_JWT_AUDIENCE")
        or temporal_auth.DEFAULT_AUDIENCE,
        issuer=issuer,
    )
    granted = temporal_auth.permissions(role, namespaces)
    if out is not None:
        temporal_auth.write_token(out, token)
    if json_:
        body: dict[str, object] = {
            "subject": subject,
            "permissions": granted,
            "expires_at": now + lifetime,
            "out": str(out) if out is not None else None,
        }
        if out is None:
            body["token"] = token
        common.print_json(body)
        return
    if out is None:
        common.console.print(token, markup=False)
        return
    common.err_console.print(
        f"[green]✔[/] token for {for_markup(subject)} ({for_markup(', '.join(granted))}, "
        f"{for_markup(ttl)}) written to {for_markup(out)} (mode 600)"
    )


@app.command()
def retire(
    kid: str = typer.Argument(
        ...,
        help="The key id (`kid`) to remove. A kid is base64url and may start with '-': put it "
        "after `--` (retire --jwks FILE -- KID).",
    ),
    jwks: Path = JWKS_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Remove a key from the key set: tokens it signed are refused once the server re-reads it
    (within a minute)."""
    temporal_auth.retire_key(jwks, kid)
    if json_:
        common.print_json({"retired": kid, "jwks": str(jwks)})
        return
    common.console.print(f"[green]✔[/] key {for_markup(kid)} removed from {for_markup(jwks)}")

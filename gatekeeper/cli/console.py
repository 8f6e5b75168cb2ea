"""``gatekeeper console``: the reviewers' web console (:mod:`gatekeeper.console`), on uvicorn."""

from __future__ import annotations

import typer

from gatekeeper.cli import common
from gatekeeper.console.settings import DEFAULT_HOST, DEFAULT_PORT, ConsoleSettings
from gatekeeper.logging import configure_logging


def register(app: typer.Typer) -> None:
    app.command("console")(console)


def console(
    ctx: typer.Context,
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    dev_sign_in: bool = typer.Option(
        None,
        "--dev-sign-in/--no-dev-sign-in",
        help="Let anyone sign in as any roster person (loopback only; default: [console] "
        "dev_sign_in).",
    ),
    json_: bool = typer.Option(
        False, "--json", help="Print where it listens as one JSON object; log JSON lines."
    ),
) -> None:
    """Serve the web console: sign in (OpenID Connect, [console] in gatekeeper.toml), see what
    waits for you, releases and orders, and decide (docs/console.md). Ctrl-C stops it."""
    from gatekeeper.console.server import console_server

    settings = common.settings(ctx).with_overrides(log_format="json" if json_ else None)
    configure_logging(settings)
    resolved = ConsoleSettings.resolve(settings, host=host, port=port, dev_sign_in=dev_sign_in)
    server = console_server(resolved)
    if json_:
        common.print_json(
            {
                "url": resolved.url,
                "listen": f"{resolved.host}:{resolved.port}",
                "dev_sign_in": resolved.dev_sign_in,
                "oidc_issuer": resolved.oidc.issuer if resolved.oidc else None,
            }
        )
    else:
        how = "development sign-in, loopback only" if resolved.dev_sign_in else "OIDC sign-in"
        common.console.print(f"Gatekeeper console on {resolved.url}  ({how})", markup=False)
    common.run(server.serve())

"""``gatekeeper demo``: run one sample release end to end on an embedded Temporal server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import typer

from gatekeeper.cli import common


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    ctx: typer.Context,
    spec: Path = typer.Option(
        Path("examples/release.yaml"), "--spec", help="The release spec to run."
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the server running afterwards to explore the UI."
    ),
) -> None:
    """Start a fresh embedded server and worker, then drive a release through every stage via the CLI."""
    from workers.demo import run_demo

    settings = common.settings(ctx)
    try:
        code = asyncio.run(run_demo(settings, spec_path=spec, keep=keep, console=common.console))
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)

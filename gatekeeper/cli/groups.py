"""Every command group of ``gatekeeper``, registered on the root app in one place."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach each command group. One line per group keeps merges trivial."""
    del app

"""What every ``gatekeeper`` command shares: settings, the event loop, JSON output, consoles."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from gatekeeper.settings import Settings

T = TypeVar("T")

#: Tables and progress go to stdout; errors always go to stderr, one line.
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def settings(ctx: typer.Context) -> Settings:
    """The settings loaded once by the top-level callback."""
    root = ctx.find_root()
    obj = root.obj
    if not isinstance(obj, Settings):  # a sub-app invoked directly in tests
        obj = Settings.from_env()
        root.obj = obj
    return obj


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine to completion."""
    return asyncio.run(coro)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (no colour, no wrapping: safe for pipes)."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")
    sys.stdout.flush()

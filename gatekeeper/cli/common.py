"""What every ``gatekeeper`` command shares: settings, the event loop, JSON output, consoles.

Machine output has one shape everywhere: :func:`print_json` writes results on stdout with every
time in RFC 3339 (``2026-12-29T22:05:05Z``, UTC), and :func:`error_json` is the one object an
error becomes on stderr when the command was given ``--json``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gatekeeper.choices import one_of as one_of  # re-exported: every command uses it
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


def rfc3339(value: datetime) -> str:
    """A time as RFC 3339 in UTC, ``2026-12-29T22:05:05Z`` (fractions kept when there are some);
    a naive time is taken to be UTC already."""
    aware = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: models and dataclasses as objects, times in RFC 3339."""
    if isinstance(value, BaseModel):
        # Pydantic writes an aware UTC time as RFC 3339 with ``Z`` already.
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (no colour, no wrapping: safe for pipes)."""
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def error_json(message: str, *, exit_code: int, kind: str, rule: str | None = None) -> None:
    """The one JSON object an error becomes under ``--json``, on one line of stderr:
    ``{"error": "...", "exit_code": 5, "type": "release_not_found"}`` (and ``"rule"``, the
    rule broken, for a refusal)."""
    body: dict[str, Any] = {"error": message, "exit_code": exit_code, "type": kind}
    if rule:
        body["rule"] = rule
    sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")
    sys.stderr.flush()


def print_table(table: Table, out: Console | None = None) -> None:
    """Print ``table`` to fit the terminal: a cell too long for its column wraps onto more lines,
    and is never cut with an ellipsis (an id or a key id cut short is no id at all)."""
    for column in table.columns:
        column.overflow = "fold"
    (out or console).print(table, soft_wrap=False)

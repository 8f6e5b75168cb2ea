"""How values read on the console's pages: times, countdowns, and the one rule for text.

Every value a template prints passes :func:`finalize` (control characters neutralised, see
:func:`gatekeeper.text.for_terminal`) and then Jinja2's autoescaping; nothing is ever marked
safe, and no Markdown or markup is interpreted: a comment reads exactly as it was typed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2
from markupsafe import Markup

from gatekeeper import redact
from gatekeeper.errors import scrub_class_names
from gatekeeper.text import for_terminal, when


def finalize(value: object) -> object:
    """What a template prints of ``value``: ``None`` as nothing, text with controls neutralised
    (still escaped afterwards: autoescaping applies to the result)."""
    if value is None:
        return ""
    if isinstance(value, Markup):  # produced by the templates themselves (macros, blocks)
        return value
    if isinstance(value, str):
        return for_terminal(value)
    return value


def one_line(err: BaseException) -> str:
    """An error's message as the CLI prints it: masked, on one line, without class names."""
    return " ".join(scrub_class_names(redact.mask(str(err))).split())


def span(seconds: float) -> str:
    """A duration for people: ``3 d 4 h``, ``5 h 12 min``, ``40 s``."""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"


def countdown(value: datetime | None, now: datetime | None = None) -> str:
    """``in 3 d 4 h`` before ``value``, ``passed 2 h ago`` after it, ``—`` without one."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    left = (value - now).total_seconds()
    return f"in {span(left)}" if left >= 0 else f"passed {span(left)} ago"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """``3 h 5 min ago``; ``—`` without a time."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    return f"{span((now - value).total_seconds())} ago"


def iso(value: datetime | None) -> str:
    """A time for a ``<time datetime=…>`` attribute (UTC, RFC 3339)."""
    if value is None:
        return ""
    aware = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def install_filters(environment: jinja2.Environment) -> None:
    environment.filters["when"] = when
    environment.filters["countdown"] = countdown
    environment.filters["ago"] = ago
    environment.filters["iso"] = iso

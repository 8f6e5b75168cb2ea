"""Helpers the decision commands share: connecting (with a signer), reading dates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gatekeeper.client import connect
from gatekeeper.errors import InputError
from gatekeeper.models.base import parse_duration
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signer import Signer


def signer(settings: Settings, key_file: Path | None = None) -> Signer:
    """Signs each request with its actor's key: ``--key FILE``, else ``<keys_dir>/<person>.pem``
    (a missing key is a one-line error naming ``gatekeeper keys generate --as PERSON``)."""
    return Signer(keys_dir=settings.keys_dir, key_file=key_file)


@asynccontextmanager
async def releases(settings: Settings, key_file: Path | None = None) -> AsyncIterator[Releases]:
    """A releases client that signs every state-changing request (see :func:`signer`)."""
    client = await connect(settings)
    yield Releases(client, settings.task_queue, signer=signer(settings, key_file))


_RELATIVE = re.compile(r"^\+(\d+[wdhms])+$")


def parse_when(value: str, *, now: datetime | None = None, option: str = "date") -> datetime:
    """A date or time from the command line, always timezone-aware (UTC unless it says otherwise).

    Accepts ``2026-12-31`` (midnight UTC), ``2026-12-31T09:30``, ``2026-12-31T09:30:00+01:00`` and
    relative times such as ``+10d`` or ``+1d12h``.
    """
    text = value.strip()
    base = now or datetime.now(UTC)
    if _RELATIVE.match(text):
        delta = parse_duration(text[1:])
        if isinstance(delta, timedelta):
            return base + delta
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{option}: '{value}' is not a date (use 2026-12-31, 2026-12-31T09:30 or +10d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def key_path(settings: Settings, person: str) -> Path:
    return settings.keys_dir / f"{person}.pem"

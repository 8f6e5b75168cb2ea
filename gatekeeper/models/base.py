"""Shared building blocks for every Gatekeeper model: strict base class and constrained types."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
)


class Model(BaseModel):
    """Base of every model: unknown fields are an error, strings are stripped.

    Models that cross the Temporal boundary only ever gain fields with defaults, so payloads
    recorded by running releases keep decoding.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=False)


#: Lower-case identifier: release ids, person ids, stage ids, cohort ids, roles.
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", min_length=1, max_length=64),
]

#: An identifier, or ``*`` meaning "any" / "all".
IdOrWildcard = Annotated[
    str, StringConstraints(pattern=r"^(\*|[a-z0-9][a-z0-9._-]{0,63})$", min_length=1, max_length=64)
]

#: Lower-case hex sha256 digest.
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

#: Free text a person writes (comments, reasons): bounded so nobody can bloat history with it.
MAX_TEXT = 2000
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
NonEmptyText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]

#: List bounds shared by the request models (documented in docs/requests.md).
MAX_EVIDENCE = 100  #: evidence items in a spec, and in one amend
MAX_AUTHORS = 20  #: authors of one evidence item
MAX_LIST = 100  #: cohorts, regions, models an order names
MAX_PARTNERS = 500  #: partners named in one request (exemptions, a partner-list decision)
MAX_SAFEGUARDS = 50  #: safeguards an order requires, or a lift attests

_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(value: Any) -> Any:
    """Accept ``30d``, ``1d12h``, ``90s``, ``2w`` as well as what pydantic accepts natively.

    Anything that is not a compact duration string is handed on to pydantic unchanged, so ISO
    8601 (``P30D``) and plain seconds keep working and errors stay pydantic's.
    """
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            return timedelta(seconds=seconds)
    return value


def format_duration(value: timedelta) -> str:
    """Render a timedelta the way policies write it: ``30d``, ``1d12h``, ``20s``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


#: A duration written as ``30d`` / ``12h`` / ``20s`` (or ISO 8601, or seconds); kept as timedelta
#: and written back in the compact form so policy snapshots stay readable.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]

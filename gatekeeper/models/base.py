"""Shared building blocks for every Gatekeeper model: strict base class and constrained types."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
)
from pydantic_core import PydanticCustomError


class Model(BaseModel):
    """Base of every model: unknown fields are an error, strings are stripped.

    Models that cross the Temporal boundary only ever gain fields with defaults, so payloads
    recorded by running releases keep decoding.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, validate_assignment=False)


#: Pattern of a key id: the algorithm (``ed25519`` for a CLI, worker, admin or gateway key,
#: ``webauthn`` for a passkey) and 32 hex digits of the public key's sha256 (here, not in
#: ``gatekeeper.identity.keys``, because request models carry key ids and are imported by it).
KEY_ID_PATTERN = r"^(ed25519|webauthn):[0-9a-f]{32}$"


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

# --- text people write: which characters it may hold --------------------------------------------
#
# One rule per kind of text, applied wherever the type is used (requests, specs, policies, orders):
#
# - identifiers, digests, nonces: their pattern admits no control character at all;
# - ``ShortText`` (titles, URIs, references, safeguards: one line): no control character;
# - ``Text`` / ``NonEmptyText`` (comments, reasons, notes, concerns: may span lines): newline and
#   tab only.
#
# "Control character" means C0 (U+0000-U+001F, so a carriage return too: it forges lines in
# Markdown and terminals), DEL and C1 (U+007F-U+009F), the Unicode line and paragraph separators
# (U+2028, U+2029), the bidirectional embeddings, overrides and isolates (U+202A-U+202E,
# U+2066-U+2069: they make text display in another order than it reads) and lone surrogates
# (U+D800-U+DFFF: they cannot be encoded, so they could not be stored or shown).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: What multi-line text may hold of the above.
MULTILINE_ALLOWED = frozenset("\n\t")


def _no_controls(allowed: frozenset[str]) -> Callable[[str], str]:
    hint = " (only newline and tab)" if allowed else ""

    def check(value: str) -> str:
        for match in _CONTROL.finditer(value):
            if match.group() not in allowed:
                raise PydanticCustomError(
                    "control_character",
                    "control character {char} is not allowed{hint}",
                    {"char": f"U+{ord(match.group()):04X}", "hint": hint},
                )
        return value

    return check


#: Free text a person writes (comments, reasons): bounded so nobody can bloat history with it.
MAX_TEXT = 2000
Text = Annotated[
    str, StringConstraints(max_length=MAX_TEXT), AfterValidator(_no_controls(MULTILINE_ALLOWED))
]
ShortText = Annotated[
    str, StringConstraints(max_length=200), AfterValidator(_no_controls(frozenset()))
]
NonEmptyText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT),
    AfterValidator(_no_controls(MULTILINE_ALLOWED)),
]

#: List bounds shared by the request models (documented in docs/requests.md).
#: A single sign-on issuer (the OIDC provider's issuer URL) and a subject it names.
SsoIssuer = Annotated[
    str,
    StringConstraints(pattern=r"^https?://\S{1,290}$", max_length=300),
    AfterValidator(_no_controls(frozenset())),
]
SsoSubject = Annotated[
    str, StringConstraints(min_length=1, max_length=255), AfterValidator(_no_controls(frozenset()))
]

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
    if value.microseconds:
        # Below a second the compact form has no unit; ISO 8601 keeps it exact, so a policy
        # written back (an installed policy's stored content) reads the same duration again.
        sign, value = ("-", -value) if value < timedelta(0) else ("", value)
        return f"{sign}PT{value.total_seconds():.6f}".rstrip("0").rstrip(".") + "S"
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

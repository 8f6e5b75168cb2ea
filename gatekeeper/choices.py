"""One-line refusals of a value that must be one of a known set (``did you mean …?``)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from gatekeeper.errors import InputError


def one_of(option: str, value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``allowed``; else a one-line refusal naming the closest one.

    Raises:
        InputError: ``--state: 'Held' is not a release state (did you mean 'held'?); one of
            active, held, ...``.
    """
    if value in allowed:
        return value
    by_lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.6)
    hint = f" (did you mean '{by_lower[close[0]]}'?)" if close else ""
    listed = ", ".join(allowed)
    if len(listed) > 240:
        listed = listed[:239] + "…"
    raise InputError(f"{option}: '{value}' is not {what}{hint}; one of {listed}")

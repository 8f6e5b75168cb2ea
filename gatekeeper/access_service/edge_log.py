"""The edge log: one JSON line per deny and per sampled allow, the evidence an order was enforced.

Fields: ``ts`` (UTC, milliseconds), ``event`` (``access_decision``), ``decision``, ``rule``,
``reason``, ``order_id``, ``grant_id``, ``person``, ``model``, ``version``, ``surface``,
``view_seq``, ``request_id`` (the caller's ``X-Request-Id``, when well formed) and ``sampled``
(``true`` for an allow, which only a share ``allow_sample`` of are written). Callers refused
before any decision (no or a wrong gateway token, no person) are lines with ``event``
``access_refused``, ``status`` and ``reason``. Only validated values are written (an invalid
person or model is ``null``), and never a token.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EdgeLog:
    """Writes edge-log lines to a file (appended, one write per line) or standard error.

    Args:
        path: the log file, or ``None`` for standard error.
        allow_sample: the share of allows written (0 writes none, 1 every one).
        sample: a source of numbers in [0, 1) (tests may pass another).
    """

    def __init__(
        self,
        path: Path | None,
        *,
        allow_sample: float,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.allow_sample = allow_sample
        self._sample = sample
        self._own = path is not None
        self._out: TextIO = (
            path.open("a", encoding="utf-8", buffering=1) if path is not None else sys.stderr
        )

    def wants_allow(self) -> bool:
        """Whether to write this allow (a sample of ``allow_sample``)."""
        rate = self.allow_sample
        return rate >= 1.0 or (rate > 0.0 and self._sample() < rate)

    def decision(
        self,
        *,
        allowed: bool,
        rule: str,
        reason: str,
        order_id: str | None,
        grant_id: str | None,
        person: str | None,
        model: str | None,
        version: str | None,
        surface: str | None,
        view_seq: int,
        request_id: str | None,
    ) -> None:
        self.write(
            {
                "ts": _now(),
                "event": "access_decision",
                "decision": "allow" if allowed else "deny",
                "rule": rule,
                "reason": reason,
                "order_id": order_id,
                "grant_id": grant_id,
                "person": person,
                "model": model,
                "version": version,
                "surface": surface,
                "view_seq": view_seq,
                "request_id": request_id,
                "sampled": allowed,
            }
        )

    def refused(self, *, status: int, reason: str, request_id: str | None) -> None:
        self.write(
            {
                "ts": _now(),
                "event": "access_refused",
                "status": status,
                "reason": reason,
                "request_id": request_id,
            }
        )

    def write(self, record: dict[str, object]) -> None:
        self._out.write(_ENCODE(record) + "\n")

    def close(self) -> None:
        if self._own:
            self._out.close()

"""Audit events: one per decision, transition, side effect and refused attempt, hash-chained."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from gatekeeper.models.base import Identifier, Model

#: ``prev_hash`` of the first event in a chain.
GENESIS_HASH = "0" * 64


class AuditEvent(Model):
    """One link of a release's audit chain.

    ``hash`` is sha256 over the canonical JSON of every other field, ``prev_hash`` included, so
    changing any byte of any event breaks every hash after it.
    """

    release_id: Identifier
    seq: int = Field(ge=0)
    at: datetime
    actor: str
    action: str
    stage: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The fields the hash covers, as plain JSON data."""
        return self.model_dump(mode="json", exclude={"hash"})

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

    def entry(self) -> AuditEntry:
        """The event as an audit write carries it (:class:`AuditEntry`)."""
        return AuditEntry(
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            action=self.action,
            stage=self.stage,
            details=self.details,
        )


class AuditEntry(Model):
    """An audit event as a release's audit writes carry it (issue 16): without what the activity
    derives itself, the release id (the request names it) and the links and hashes (recomputed
    from the hash before the first entry, which the request carries, and checked against the
    head the workflow sent). About 180 bytes less per event in the release's history, and the
    worker signs and stores only a chain whose hashes it computed from the content."""

    seq: int = Field(ge=0)
    at: datetime
    actor: str
    action: str
    stage: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

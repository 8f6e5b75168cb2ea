"""Notices: what the ledger wants people told. The workflow turns each into one activity call."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gatekeeper.models.enums import NotificationEvent


@dataclass
class Notice:
    """A message for people about one event, written at the moment it happened.

    ``audit_seq`` ties the notice to the audit event it reports; with the release id and the
    event it forms the notification's idempotency key, so retries never send it twice.
    """

    event: NotificationEvent
    subject: str
    body: str
    audit_seq: int
    stage: str | None = None
    action_needed: str = ""
    due: datetime | None = None
    concerned: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)

"""Small builders of valid requests and audit chains, shared by adapter and activity tests."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gatekeeper.canonical import digest_of
from gatekeeper.channels.email import EmailSettings
from gatekeeper.channels.webhook import WebhookSettings
from gatekeeper.models.audit import GENESIS_HASH, AuditEvent
from gatekeeper.models.enums import EvidenceKind, NotificationEvent, Surface
from gatekeeper.models.io import (
    EvidenceCheckRequest,
    LaunchRequest,
    Notification,
    NotifyRequest,
    Recipient,
    SubmissionRequest,
)
from gatekeeper.models.spec import Artifact, EvidenceRef, ModelRef

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
RELEASE = "atlas-2"
DIGEST = "a" * 64


def notification(key: str = "atlas-2:internal_review:gate_waiting:0") -> Notification:
    return Notification(
        idempotency_key=key,
        release_id=RELEASE,
        event=NotificationEvent.GATE_WAITING,
        stage="internal_review",
        subject="Atlas 2 waits for your review",
        body="Internal review of atlas 2.0 is open.",
        action_needed="approve, reject or request changes",
        due=T0 + timedelta(days=3),
        occurred_at=T0,
    )


def recipients(count: int, channel: str = "outbox") -> list[Recipient]:
    return [Recipient(id=f"person-{i}", name=f"Person {i}", channel=channel) for i in range(count)]


def notify_request(
    count: int = 3, channel: str = "outbox", key: str = "atlas-2:internal_review:gate_waiting:0"
) -> NotifyRequest:
    return NotifyRequest(notification=notification(key), recipients=recipients(count, channel))


def webhook_settings(
    url: str = "https://hooks.example.org/gatekeeper", secret_env: str = "HOOK_SECRET"
) -> WebhookSettings:
    """A webhook channel as a worker's configuration defines it."""
    return WebhookSettings(type="webhook", url=url, secret_env=secret_env)


def email_settings(
    host: str = "smtp.example.org", port: int | None = None, **extra: Any
) -> EmailSettings:
    """An e-mail channel as a worker's configuration defines it."""
    return EmailSettings(
        type="email", smtp_host=host, smtp_port=port, sender="gatekeeper@lab.example", **extra
    )


def submission(key: str = "atlas-2:government_submission:submit:0") -> SubmissionRequest:
    return SubmissionRequest(
        idempotency_key=key,
        release_id=RELEASE,
        model=ModelRef(name="atlas", version="2.0"),
        artifact=Artifact(uri="s3://weights/atlas-2.0", sha256=DIGEST),
        covered_model="designated",
        evidence=[
            EvidenceRef(
                id="system-card",
                kind=EvidenceKind.SYSTEM_CARD,
                uri="https://example.org/atlas-2/system-card.pdf",
                sha256="b" * 64,
            )
        ],
        clearinghouse="default",
        submitted_by="rm-alice",
        requested_at=T0,
    )


def launch(key: str = "atlas-2:public_launch:launch:0") -> LaunchRequest:
    return LaunchRequest(
        idempotency_key=key,
        release_id=RELEASE,
        model=ModelRef(name="atlas", version="2.0"),
        artifact=Artifact(uri="s3://weights/atlas-2.0", sha256=DIGEST),
        surfaces=[Surface.API, Surface.APP],
        approved_by=["exec-carol"],
        requested_at=T0,
    )


def write_file(path: Path, data: bytes) -> str:
    """Write ``data`` and return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def evidence_request(artifact: Artifact, *items: tuple[str, str, str]) -> EvidenceCheckRequest:
    """``items`` are (id, uri, sha256)."""
    return EvidenceCheckRequest(
        release_id=RELEASE,
        artifact=artifact,
        evidence=[
            EvidenceRef(id=i, kind=EvidenceKind.OTHER, uri=uri, sha256=sha) for i, uri, sha in items
        ],
    )


def chain(length: int, release_id: str = RELEASE, **overrides: Any) -> list[AuditEvent]:
    """A correctly hash-chained list of ``length`` events."""
    events: list[AuditEvent] = []
    previous = GENESIS_HASH
    for seq in range(length):
        body: dict[str, Any] = {
            "release_id": release_id,
            "seq": seq,
            "at": (T0 + timedelta(minutes=seq)).isoformat(),
            "actor": "system",
            "action": f"step-{seq}",
            "stage": None,
            "details": overrides,
            "prev_hash": previous,
        }
        previous = digest_of(body)
        events.append(AuditEvent.model_validate({**body, "hash": previous}))
    return events


def write_worker_config(
    path: Path, channels: dict[str, dict[str, Any]], allow_hosts: tuple[str, ...] = ()
) -> Path:
    """Write a worker configuration file (TOML) defining ``channels``; returns ``path``.

    Values are strings or whole numbers (JSON strings are valid TOML basic strings).
    """
    lines: list[str] = []
    for name, fields in channels.items():
        lines.append(f"[channels.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        lines.append("")
    lines += ["[egress]", f"allow_hosts = {json.dumps(list(allow_hosts))}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path

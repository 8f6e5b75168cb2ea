"""Helpers the decision commands share: connecting, reading dates, signing with a key."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.client import connect
from gatekeeper.errors import InputError
from gatekeeper.models.base import parse_duration
from gatekeeper.models.messages import DecisionSignature
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings


@asynccontextmanager
async def releases(settings: Settings) -> AsyncIterator[Releases]:
    client = await connect(settings)
    yield Releases(client, settings.task_queue)


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


def load_key(settings: Settings, person: str, explicit: Path | None) -> Ed25519PrivateKey | None:
    """The person's private key: ``--key`` if given, else their key in the keys dir, if any."""
    path = explicit or key_path(settings, person)
    if not path.exists():
        if explicit is not None:
            raise InputError(f"--key: {explicit} does not exist")
        return None
    try:
        return signing.load_private_key(path.read_bytes())
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: not an Ed25519 private key in PEM form ({err})") from err


def sign_decision(
    key: Ed25519PrivateKey,
    *,
    release_id: str,
    stage: str,
    decision: str,
    decider: str,
    role: str,
    artifact_sha256: str,
    subject: str = "",
) -> DecisionSignature:
    signed_at = datetime.now(UTC)
    nonce = signing.new_nonce()
    payload = signing.decision_payload(
        release_id=release_id,
        stage=stage,
        decision=decision,
        decider=decider,
        role=role,
        signed_at=signed_at,
        nonce=nonce,
        artifact_sha256=artifact_sha256,
        subject=subject,
    )
    return DecisionSignature(
        signed_at=signed_at,
        nonce=nonce,
        artifact_sha256=artifact_sha256,
        value=signing.sign(key, payload),
    )


async def sign_current(
    api: Releases,
    key: Ed25519PrivateKey | None,
    release_id: str,
    *,
    decision: str,
    decider: str,
    role: str,
    subject: str = "",
    stage: str | None = None,
) -> tuple[str | None, DecisionSignature | None]:
    """Sign a decision on ``stage`` (default: the release's current stage) and its artifact.

    Returns the stage decided and the signature; without a key, ``(stage, None)``: the workflow
    then judges the decision unsigned (refusing it if the policy requires signatures).
    """
    if key is None:
        return stage, None
    current = await api.status(release_id)
    decided = stage or current.stage
    if decided is None:
        return stage, None
    signature = sign_decision(
        key,
        release_id=release_id,
        stage=decided,
        decision=decision,
        decider=decider,
        role=role,
        artifact_sha256=current.spec.artifact.sha256,
        subject=subject,
    )
    return decided, signature

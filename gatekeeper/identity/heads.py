"""Signed audit heads: the worker's signature over a release's audit chain at one event.

At every stage end and at the release's end the worker signs the head of the release's audit
chain with its own key (``[identity] worker_key``) and appends the signed head to the anchor
table, outside the workflow (:mod:`gatekeeper.adapters.anchors`). The workflow records the
signed head as an audit event ``audit_head_signed`` whose details are a :class:`SignedHead`.

A head names the release and its *first* run id (a Temporal reset keeps the first run id, so a
reset release and its original share it, and a different chain under the same id and seq is a
fork), the event ``seq`` it covers and that event's ``hash``. It also lists ``links``: a short
prefix of the hash of every event from ``first`` to ``seq``, so a verifier holding a re-hashed
chain can name the first event that differs, not just the head that does.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, Field

from gatekeeper.canonical import canonical_json
from gatekeeper.identity.keys import KEY_ID_PATTERN, key_id_of
from gatekeeper.models.audit import AuditEntry, AuditEvent
from gatekeeper.models.base import Identifier, Model
from gatekeeper.signing import verify as verify_bytes
from gatekeeper.statements import public_key_b64, timestamp

#: The audit action of a signed head in a release's chain.
HEAD_ACTION = "audit_head_signed"
#: Hex digits of each event's hash a head lists in ``links``.
LINK_LENGTH = 8

_HASH = r"^[0-9a-f]{64}$"


class AuditHead(Model):
    """What the worker signs: the chain of ``release_id`` (first run ``first_run_id``) at ``seq``."""

    release_id: Identifier
    first_run_id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    hash: str = Field(pattern=_HASH)
    #: When the worker signed, spelled as :func:`gatekeeper.statements.timestamp`.
    signed_at: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    key_id: str = Field(pattern=KEY_ID_PATTERN)
    #: Why now: ``stage internal_review completed``, ``release launched``.
    reason: str = Field(max_length=200)
    #: The first event ``links`` covers (the event after the previous signed head).
    first: int = Field(default=0, ge=0)
    #: ``LINK_LENGTH`` hex digits of the hash of each event ``first..seq``.
    links: list[str] = Field(default_factory=list, max_length=100_000)

    def signed_time(self) -> datetime:
        return datetime.strptime(self.signed_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class SignedHead(Model):
    """An audit head and the worker's signature over :func:`head_bytes`."""

    head: AuditHead
    signature: str = Field(pattern=r"^[A-Za-z0-9+/=]{40,200}$")


class Anchor(SignedHead):
    """A signed head as the append-only anchor table holds it."""

    anchored_at: AwareDatetime


class AnchorRequest(Model):
    """What the workflow asks of ``anchor_audit_head``: store ``events`` (the ones not yet stored)
    in the audit store, sign the head at ``seq`` and anchor it.

    Since issue 16 (COST_PATCH) a release sends ``entries`` and ``prev_hash`` instead of
    ``events``: the activity seals them (:func:`gatekeeper.audit.sealed`) and the head it signs
    must be the last sealed event's."""

    release_id: Identifier
    first_run_id: str = Field(min_length=1, max_length=64)
    events: list[AuditEvent] = Field(default_factory=list)
    #: The events to store, without release id, links and hashes (see ``prev_hash``).
    entries: list[AuditEntry] = Field(default_factory=list)
    #: The hash of the event before the first entry (the genesis hash before event 0).
    prev_hash: str | None = Field(default=None, pattern=_HASH)
    seq: int = Field(ge=0)
    hash: str = Field(pattern=_HASH)
    reason: str = Field(max_length=200)
    first: int = Field(default=0, ge=0)
    #: The links of the events from ``first`` that are not among ``events`` (usually none: the
    #: activity takes the others from ``events``).
    links: list[str] = Field(default_factory=list)

    def all_links(self) -> list[str]:
        """The head's ``links``: those sent, then a prefix of each event sent from ``first``."""
        return self.links + [e.hash[:LINK_LENGTH] for e in self.events if e.seq >= self.first]


class HeadSignature(Model):
    """What ``anchor_audit_head`` answers: when and with which key the head was signed, and the
    signature (the workflow knows the rest of the head)."""

    signed_at: str
    key_id: str = Field(pattern=KEY_ID_PATTERN)
    signature: str
    #: How many events the audit store holds for the release after the call.
    stored_length: int | None = None


def head_bytes(head: AuditHead) -> bytes:
    """The exact bytes a head's signature covers."""
    return canonical_json({"v": 1, "type": "gatekeeper.audit-head", **head.model_dump(mode="json")})


def sign_head(
    private_key: Ed25519PrivateKey,
    *,
    release_id: str,
    first_run_id: str,
    seq: int,
    hash: str,
    reason: str,
    first: int = 0,
    links: list[str] | None = None,
    signed_at: datetime | None = None,
) -> SignedHead:
    """The head of ``release_id``'s chain at ``seq``, signed with ``private_key``."""
    head = AuditHead(
        release_id=release_id,
        first_run_id=first_run_id,
        seq=seq,
        hash=hash,
        signed_at=timestamp(signed_at or datetime.now(UTC)),
        key_id=key_id_of(public_key_b64(private_key)),
        reason=reason,
        first=first,
        links=list(links or []),
    )
    value = base64.b64encode(private_key.sign(head_bytes(head))).decode("ascii")
    return SignedHead(head=head, signature=value)


def verify_head(public_key: str, signed: SignedHead) -> bool:
    """True only when ``signed.signature`` is the key's signature over the head."""
    return verify_bytes(public_key, head_bytes(signed.head), signed.signature)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The worker's private key from ``path`` (PEM), made there (mode 0600) if there is none."""
    from cryptography.hazmat.primitives import serialization

    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and linked into place: two workers starting on one data directory
        # never see half a key, and the first one's key is everyone's.
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return loaded

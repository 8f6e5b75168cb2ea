"""The access registry's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` build them.

Changing a table here needs a new migration; ``tests/registry/test_migrations.py`` fails when the
two drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the offset otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("registry timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(64)

partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("tier", sa.String(32), nullable=False),
    sa.Column("jurisdiction", ID, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0", index=True),
)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("partner_id", ID, sa.ForeignKey("partners.id"), nullable=True, index=True),
    sa.Column("nationality", sa.String(32), nullable=False),
    sa.Column("location", ID, nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0", index=True),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("grant_id", sa.String(40), primary_key=True),
    sa.Column("idempotency_key", sa.String(400), nullable=False, unique=True),
    sa.Column("release_id", ID, nullable=False, index=True),
    sa.Column("model_name", ID, nullable=False, index=True),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("surface", sa.String(32), nullable=False),
    sa.Column("partner_id", ID, sa.ForeignKey("partners.id"), nullable=False),
    sa.Column("cohort", ID, nullable=False),
    sa.Column("tiers", sa.JSON(), nullable=False),
    sa.Column("jurisdiction", ID, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("order_id", ID, nullable=True),
    sa.Column("granted_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=True),
    sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0", index=True),
    sa.Index(None, "partner_id", "model_name", "surface"),
)

access_orders = sa.Table(
    "access_orders",
    metadata,
    sa.Column("order_id", ID, primary_key=True),
    sa.Column("models", sa.JSON(), nullable=False),
    sa.Column("scope", sa.String(80), nullable=False),
    sa.Column("exempt_partners", sa.JSON(), nullable=False),
    sa.Column("required_safeguards", sa.JSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("issued_by", ID, nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("lifted_at", UtcDateTime(), nullable=True),
    sa.Column("lifted_by", ID, nullable=True),
    sa.Column("lift_reason", sa.Text(), nullable=False),
    sa.Column("safeguards", sa.JSON(), nullable=False),
    sa.Column("exemptions", sa.JSON(), nullable=False),
    sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0", index=True),
)

#: Model versions a release's launch published to the public, one row per surface.
public_launches = sa.Table(
    "public_launches",
    metadata,
    sa.Column("release_id", ID, primary_key=True),
    sa.Column("surface", sa.String(32), primary_key=True),
    sa.Column("model_name", ID, nullable=False, index=True),
    sa.Column("model_version", sa.String(200), nullable=False),
    sa.Column("launch_id", sa.String(200), nullable=False),
    sa.Column("published_at", UtcDateTime(), nullable=False),
    sa.Column("change_seq", sa.BigInteger(), nullable=False, server_default="0", index=True),
)

#: The access change feed's clock (migration 0009): one row (``id`` 1). Triggers on the five
#: tables above bump ``seq`` when a transaction inserts or updates one of their rows and stamp
#: the row's ``change_seq`` with it; a delete (or an update moving a row a reader keys by
#: its id, partner, model or surface) bumps ``epoch`` too, telling readers to reload everything.
#: See ``AccessRegistry.access_changes``.
access_clock = sa.Table(
    "access_clock",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("id = 1", name="ck_access_clock_one_row"),
)

#: Results of idempotent operations, by business key, so a retried activity gets the same answer.
operations = sa.Table(
    "operations",
    metadata,
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("result", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

#: Installed policy versions (see :mod:`gatekeeper.adapters.policy_store`). A row never changes:
#: an installed version is immutable, and who installed it when is part of the row.
policies = sa.Table(
    "policies",
    metadata,
    sa.Column("policy_id", ID, primary_key=True),
    sa.Column("version", sa.String(200), primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("content", sa.JSON(), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("installed_by", ID, nullable=False),
    sa.Column("installed_at", UtcDateTime(), nullable=False),
)

#: The store's default policy version (at most one row, ``slot = 'default'``), and who set it when.
policy_default = sa.Table(
    "policy_default",
    metadata,
    sa.Column("slot", sa.String(16), primary_key=True),
    sa.Column("policy_id", ID, nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("set_by", ID, nullable=False),
    sa.Column("set_at", UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(["policy_id", "version"], ["policies.policy_id", "policies.version"]),
)

#: Registered public keys (see :mod:`gatekeeper.identity.registry`): the current state the
#: identity log leads to. Only ``revoked_at``/``revoked_reason`` ever change, by a logged revocation.
identity_keys = sa.Table(
    "identity_keys",
    metadata,
    sa.Column("key_id", sa.String(48), primary_key=True),
    sa.Column("principal", ID, nullable=False, index=True),
    sa.Column("principal_kind", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("public_key", sa.String(128), nullable=False, unique=True),
    sa.Column("valid_from", UtcDateTime(), nullable=False),
    sa.Column("valid_until", UtcDateTime(), nullable=True),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("revoked_reason", sa.String(200), nullable=False),
    sa.Column("certified_by", sa.String(48), nullable=False),
    sa.Column("certificate", sa.String(128), nullable=False),
    sa.Column("registered_at", UtcDateTime(), nullable=False),
    sa.Column("log_seq", sa.Integer(), nullable=False),
    # A passkey's credential id, relying party id and origin (migration 0006); NULL otherwise.
    sa.Column("credential_id", sa.String(1400), nullable=True),
    sa.Column("rp_id", sa.String(253), nullable=True),
    sa.Column("origin", sa.String(300), nullable=True),
)

#: Passkeys people asked to register (through the console), each waiting for an identity admin
#: (``state`` pending) or decided (approved: registered as a key; rejected). A request, not a
#: key: nothing here counts for a signature.
passkey_enrollments = sa.Table(
    "passkey_enrollments",
    metadata,
    sa.Column("enrollment_id", sa.String(16), primary_key=True),
    sa.Column("person", ID, nullable=False, index=True),
    sa.Column("key_id", sa.String(48), nullable=False),
    sa.Column("credential_id", sa.String(1400), nullable=False),
    sa.Column("public_key", sa.String(128), nullable=False),
    sa.Column("rp_id", sa.String(253), nullable=False),
    sa.Column("origin", sa.String(300), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("requested_at", UtcDateTime(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("decided_by", sa.String(48), nullable=True),
    sa.Column("reason", sa.String(200), nullable=False),
)

#: Single sign-on identities (OIDC issuer + subject) linked to roster people: the current state
#: the identity log's ``link_sso``/``unlink_sso`` entries lead to.
identity_sso_links = sa.Table(
    "identity_sso_links",
    metadata,
    sa.Column("issuer", sa.String(300), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("person", ID, nullable=False, index=True),
    sa.Column("email", sa.String(200), nullable=True),
    sa.Column("linked_at", UtcDateTime(), nullable=False),
    sa.Column("linked_by", sa.String(48), nullable=False),
    sa.Column("log_seq", sa.Integer(), nullable=False),
)

#: Every identity change, signed by the admin key that made it and chained by hash. Rows are
#: only ever inserted: the database refuses UPDATE and DELETE (triggers, migration 0004).
identity_log = sa.Table(
    "identity_log",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("key_id", sa.String(48), nullable=False),
    sa.Column("by_key_id", sa.String(48), nullable=False),
    sa.Column("body", sa.JSON(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("signature", sa.String(128), nullable=False),
)

#: Signed audit heads (see :mod:`gatekeeper.adapters.anchors`). Append-only: rows are inserted,
#: never updated or deleted (triggers refuse both); two different heads for one release and seq
#: are a fork, and both stay.
audit_anchors = sa.Table(
    "audit_anchors",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("release_id", ID, nullable=False, index=True),
    sa.Column("first_run_id", ID, nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("signed_at", sa.String(32), nullable=False),
    sa.Column("key_id", ID, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("head", sa.JSON(), nullable=False),
    sa.Column("signature", sa.String(200), nullable=False),
    sa.Column("anchored_at", UtcDateTime(), nullable=False),
)

#: Console sessions ended by signing out (see :mod:`gatekeeper.adapters.console_sessions`): a
#: session cookie naming one of these ``sid``s is no session, on every console replica. Each row
#: carries when its session would have expired anyway; rows past it are pruned.
console_sessions_ended = sa.Table(
    "console_sessions_ended",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("ended_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

#: Idempotency keys made by workflows (``<release>:<stage>:<action>:<seq>``, and for a delivery
#: ``<notification key>:<recipient>:<channel>``): bounded, so one index covers them on every
#: backend.
KEY = sa.String(400)

#: The send journal (issue 16): one row per delivery key, shared by every worker of the
#: installation. A row with ``delivered_at`` unset is a *claim*: an attempt began to send and may
#: have reached the far side; ``delivered_at`` set means the channel accepted it, and the row then
#: carries what was delivered (notification, recipient, channel). The key is the primary key, so
#: "claim it" and "record it" are each one insert that exactly one worker wins.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("key", KEY, primary_key=True),
    sa.Column("release_id", ID, nullable=False, index=True),
    sa.Column("channel", ID, nullable=False),
    sa.Column("channel_type", sa.String(32), nullable=False),
    sa.Column("claimed_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime(), nullable=True),
    sa.Column("record", sa.JSON(), nullable=True),
)

#: Every release's audit chain as the workflow flushed it (issue 16; before, one JSONL file per
#: release under the data directory). Append-only: triggers refuse updates and deletes, as for
#: ``audit_anchors``.
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("release_id", ID, primary_key=True),
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("event", sa.JSON(), nullable=False),
    sa.Column("stored_at", UtcDateTime(), nullable=False),
)

#: The embedded clearinghouse (issue 16): what each submission sent and the one receipt issued
#: for its idempotency key, whichever worker asked first.
clearinghouse_receipts = sa.Table(
    "clearinghouse_receipts",
    metadata,
    sa.Column("idempotency_key", KEY, primary_key=True),
    sa.Column("release_id", ID, nullable=False, index=True),
    sa.Column("receipt_id", ID, nullable=False, unique=True),
    sa.Column("clearinghouse", ID, nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("submission", sa.JSON(), nullable=False),
    sa.Column("receipt", sa.JSON(), nullable=False),
)

#: The embedded launch publisher (issue 16): one launch record per idempotency key.
launches = sa.Table(
    "launches",
    metadata,
    sa.Column("idempotency_key", KEY, primary_key=True),
    sa.Column("release_id", ID, nullable=False, index=True),
    sa.Column("launch_id", ID, nullable=False, unique=True),
    sa.Column("published_at", UtcDateTime(), nullable=False),
    sa.Column("record", sa.JSON(), nullable=False),
)

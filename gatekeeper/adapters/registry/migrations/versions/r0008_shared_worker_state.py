"""Everything a worker kept in files moves into the one database: deliveries (the send
journal), audit chains, clearinghouse receipts and launch records.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)
KEY = sa.String(length=400)

_REFUSAL = "audit events are append-only"

_SQLITE = [
    f"CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END",
    f"CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END",
]
_POSTGRESQL = [
    "CREATE FUNCTION audit_events_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse()",
]


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("key", KEY, nullable=False),
        sa.Column("release_id", ID, nullable=False),
        sa.Column("channel", ID, nullable=False),
        sa.Column("channel_type", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("record", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_deliveries")),
    )
    op.create_index(op.f("ix_deliveries_release_id"), "deliveries", ["release_id"], unique=False)
    op.create_table(
        "audit_events",
        sa.Column("release_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("release_id", "seq", name=op.f("pk_audit_events")),
    )
    op.create_table(
        "clearinghouse_receipts",
        sa.Column("idempotency_key", KEY, nullable=False),
        sa.Column("release_id", ID, nullable=False),
        sa.Column("receipt_id", ID, nullable=False),
        sa.Column("clearinghouse", ID, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submission", sa.JSON(), nullable=False),
        sa.Column("receipt", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_clearinghouse_receipts")),
        sa.UniqueConstraint("receipt_id", name=op.f("uq_clearinghouse_receipts_receipt_id")),
    )
    op.create_index(
        op.f("ix_clearinghouse_receipts_release_id"),
        "clearinghouse_receipts",
        ["release_id"],
        unique=False,
    )
    op.create_table(
        "launches",
        sa.Column("idempotency_key", KEY, nullable=False),
        sa.Column("release_id", ID, nullable=False),
        sa.Column("launch_id", ID, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_launches")),
        sa.UniqueConstraint("launch_id", name=op.f("uq_launches_launch_id")),
    )
    op.create_index(op.f("ix_launches_release_id"), "launches", ["release_id"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_refuse()")
    op.drop_index(op.f("ix_launches_release_id"), table_name="launches")
    op.drop_table("launches")
    op.drop_index(op.f("ix_clearinghouse_receipts_release_id"), table_name="clearinghouse_receipts")
    op.drop_table("clearinghouse_receipts")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_deliveries_release_id"), table_name="deliveries")
    op.drop_table("deliveries")

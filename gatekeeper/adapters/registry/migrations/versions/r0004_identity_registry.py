"""The identity registry: registered keys and the append-only, hash-chained identity log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)
KEY_ID = sa.String(length=48)

#: The identity log refuses UPDATE and DELETE in the database itself, not only in the code.
_SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER identity_log_no_update BEFORE UPDATE ON identity_log
    BEGIN SELECT RAISE(ABORT, 'the identity log is append-only'); END
    """,
    """
    CREATE TRIGGER identity_log_no_delete BEFORE DELETE ON identity_log
    BEGIN SELECT RAISE(ABORT, 'the identity log is append-only'); END
    """,
]
_POSTGRES_TRIGGERS = [
    """
    CREATE FUNCTION identity_log_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'the identity log is append-only'; END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER identity_log_append_only BEFORE UPDATE OR DELETE ON identity_log
    FOR EACH ROW EXECUTE FUNCTION identity_log_append_only()
    """,
]


def upgrade() -> None:
    op.create_table(
        "identity_keys",
        sa.Column("key_id", KEY_ID, nullable=False),
        sa.Column("principal", ID, nullable=False),
        sa.Column("principal_kind", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=200), nullable=False),
        sa.Column("certified_by", KEY_ID, nullable=False),
        sa.Column("certificate", sa.String(length=128), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_identity_keys")),
        sa.UniqueConstraint("public_key", name=op.f("uq_identity_keys_public_key")),
    )
    op.create_index(
        op.f("ix_identity_keys_principal"), "identity_keys", ["principal"], unique=False
    )
    op.create_table(
        "identity_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("key_id", KEY_ID, nullable=False),
        sa.Column("by_key_id", KEY_ID, nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_identity_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_identity_log_hash")),
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRES_TRIGGERS}.get(
        dialect, []
    ):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS identity_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS identity_log_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS identity_log_append_only ON identity_log")
        op.execute("DROP FUNCTION IF EXISTS identity_log_append_only()")
    op.drop_table("identity_log")
    op.drop_index(op.f("ix_identity_keys_principal"), table_name="identity_keys")
    op.drop_table("identity_keys")

"""The append-only anchor table of signed audit heads.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)

_REFUSAL = "audit anchors are append-only"

_SQLITE = [
    f"CREATE TRIGGER audit_anchors_no_update BEFORE UPDATE ON audit_anchors "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END",
    f"CREATE TRIGGER audit_anchors_no_delete BEFORE DELETE ON audit_anchors "
    f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}'); END",
]
_POSTGRESQL = [
    "CREATE FUNCTION audit_anchors_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_REFUSAL}'; END $$",
    "CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE ON audit_anchors "
    "FOR EACH ROW EXECUTE FUNCTION audit_anchors_refuse()",
]


def upgrade() -> None:
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", ID, nullable=False),
        sa.Column("first_run_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.String(length=32), nullable=False),
        sa.Column("key_id", ID, nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("head", sa.JSON(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
    )
    op.create_index(
        op.f("ix_audit_anchors_release_id"), "audit_anchors", ["release_id"], unique=False
    )
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER audit_anchors_append_only ON audit_anchors")
        op.execute("DROP FUNCTION audit_anchors_refuse()")
    op.drop_index(op.f("ix_audit_anchors_release_id"), table_name="audit_anchors")
    op.drop_table("audit_anchors")

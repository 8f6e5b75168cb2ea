"""Installed policy versions and the store's default.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("installed_by", ID, nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", "version", name=op.f("pk_policies")),
    )
    op.create_table(
        "policy_default",
        sa.Column("slot", sa.String(length=16), nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("version", sa.String(length=200), nullable=False),
        sa.Column("set_by", ID, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id", "version"],
            ["policies.policy_id", "policies.version"],
            name=op.f("fk_policy_default_policy_id_policies"),
        ),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_policy_default")),
    )


def downgrade() -> None:
    op.drop_table("policy_default")
    op.drop_table("policies")

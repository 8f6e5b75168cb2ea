"""Per-model order exemptions and public launches.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)


def upgrade() -> None:
    # Existing orders have had no exemptions beyond their exempt_partners.
    op.add_column(
        "access_orders",
        sa.Column("exemptions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.create_table(
        "public_launches",
        sa.Column("release_id", ID, nullable=False),
        sa.Column("surface", sa.String(length=32), nullable=False),
        sa.Column("model_name", ID, nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("launch_id", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("release_id", "surface", name=op.f("pk_public_launches")),
    )
    op.create_index(op.f("ix_public_launches_model_name"), "public_launches", ["model_name"])


def downgrade() -> None:
    op.drop_index(op.f("ix_public_launches_model_name"), table_name="public_launches")
    op.drop_table("public_launches")
    # SQLite cannot drop a column in place; batch mode copies the table.
    with op.batch_alter_table("access_orders") as batch:
        batch.drop_column("exemptions")

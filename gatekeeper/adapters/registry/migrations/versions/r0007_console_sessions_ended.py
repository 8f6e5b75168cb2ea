"""Console sessions ended by signing out: the session ids every console replica refuses.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "console_sessions_ended",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_console_sessions_ended")),
    )
    op.create_index(
        op.f("ix_console_sessions_ended_expires_at"),
        "console_sessions_ended",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sessions_ended_expires_at"), table_name="console_sessions_ended")
    op.drop_table("console_sessions_ended")

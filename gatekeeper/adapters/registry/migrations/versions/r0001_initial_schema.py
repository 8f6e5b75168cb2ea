"""Initial schema: partners, people, grants, access orders, idempotent operations.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", ID, nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
    )
    op.create_table(
        "people",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=True),
        sa.Column("nationality", sa.String(length=32), nullable=False),
        sa.Column("location", ID, nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_people_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
    )
    op.create_index(op.f("ix_people_partner_id"), "people", ["partner_id"])
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=400), nullable=False),
        sa.Column("release_id", ID, nullable=False),
        sa.Column("model_name", ID, nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=False),
        sa.Column("surface", sa.String(length=32), nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("cohort", ID, nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("jurisdiction", ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("order_id", ID, nullable=True),
        _timestamp("granted_at"),
        _timestamp("changed_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_grants_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_grants")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_grants_idempotency_key")),
    )
    op.create_index(op.f("ix_grants_release_id"), "grants", ["release_id"])
    op.create_index(op.f("ix_grants_model_name"), "grants", ["model_name"])
    op.create_index(
        op.f("ix_grants_partner_id_model_name_surface"),
        "grants",
        ["partner_id", "model_name", "surface"],
    )
    op.create_table(
        "access_orders",
        sa.Column("order_id", ID, nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(length=80), nullable=False),
        sa.Column("exempt_partners", sa.JSON(), nullable=False),
        sa.Column("required_safeguards", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("issued_by", ID, nullable=False),
        _timestamp("issued_at"),
        sa.Column("status", sa.String(length=16), nullable=False),
        _timestamp("lifted_at", nullable=True),
        sa.Column("lifted_by", ID, nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=False),
        sa.Column("safeguards", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_access_orders")),
    )
    op.create_index(op.f("ix_access_orders_status"), "access_orders", ["status"])
    op.create_table(
        "operations",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_operations")),
    )


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_index(op.f("ix_access_orders_status"), table_name="access_orders")
    op.drop_table("access_orders")
    op.drop_index(op.f("ix_grants_partner_id_model_name_surface"), table_name="grants")
    op.drop_index(op.f("ix_grants_model_name"), table_name="grants")
    op.drop_index(op.f("ix_grants_release_id"), table_name="grants")
    op.drop_table("grants")
    op.drop_index(op.f("ix_people_partner_id"), table_name="people")
    op.drop_table("people")
    op.drop_table("partners")

"""Passkeys and single sign-on in the identity registry: a passkey's credential, relying party
and origin on its key row, passkey enrollments waiting for an admin, and SSO links.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.String(length=64)
KEY_ID = sa.String(length=48)


def upgrade() -> None:
    with op.batch_alter_table("identity_keys") as batch:
        # A passkey's public key is a 65-byte P-256 point: 88 characters of base64.
        batch.alter_column(
            "public_key",
            existing_type=sa.String(length=64),
            type_=sa.String(length=128),
            existing_nullable=False,
        )
        batch.add_column(sa.Column("credential_id", sa.String(length=1400), nullable=True))
        batch.add_column(sa.Column("rp_id", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("origin", sa.String(length=300), nullable=True))
    op.create_table(
        "passkey_enrollments",
        sa.Column("enrollment_id", sa.String(length=16), nullable=False),
        sa.Column("person", ID, nullable=False),
        sa.Column("key_id", KEY_ID, nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.String(length=128), nullable=False),
        sa.Column("rp_id", sa.String(length=253), nullable=False),
        sa.Column("origin", sa.String(length=300), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", KEY_ID, nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id", name=op.f("pk_passkey_enrollments")),
    )
    op.create_index(
        op.f("ix_passkey_enrollments_person"), "passkey_enrollments", ["person"], unique=False
    )
    op.create_table(
        "identity_sso_links",
        sa.Column("issuer", sa.String(length=300), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("person", ID, nullable=False),
        sa.Column("email", sa.String(length=200), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("linked_by", KEY_ID, nullable=False),
        sa.Column("log_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "subject", name=op.f("pk_identity_sso_links")),
    )
    op.create_index(
        op.f("ix_identity_sso_links_person"), "identity_sso_links", ["person"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_sso_links_person"), table_name="identity_sso_links")
    op.drop_table("identity_sso_links")
    op.drop_index(op.f("ix_passkey_enrollments_person"), table_name="passkey_enrollments")
    op.drop_table("passkey_enrollments")
    with op.batch_alter_table("identity_keys") as batch:
        batch.drop_column("origin")
        batch.drop_column("rp_id")
        batch.drop_column("credential_id")
        batch.alter_column(
            "public_key",
            existing_type=sa.String(length=128),
            type_=sa.String(length=64),
            existing_nullable=False,
        )

"""Alembic revisions of the access registry, oldest first by ``down_revision``."""

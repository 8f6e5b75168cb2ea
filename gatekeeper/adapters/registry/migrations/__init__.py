"""Alembic migrations of the access registry (script directory: this package)."""

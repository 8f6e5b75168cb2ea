"""The worker's database-backed stores as fixtures, on SQLite and PostgreSQL (tests/journals.py)."""

from tests.journals import (  # noqa: F401 - fixtures
    audit_store,
    break_database,
    clearinghouse,
    deliveries,
    embedded,
    journal,
    journals,
    launcher,
)

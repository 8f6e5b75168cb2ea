"""Alembic environment: migrate the connection that ``migrate.upgrade`` hands over.

Gatekeeper runs migrations programmatically on a connection it has already opened (and, on
SQLite, locked with ``BEGIN IMMEDIATE``), so there is no ``alembic.ini`` and no offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gatekeeper.adapters.registry.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("registry migrations run through gatekeeper.adapters.registry.migrate")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

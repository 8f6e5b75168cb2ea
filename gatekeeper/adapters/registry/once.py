"""Insert a row unless its key is taken: the one step that makes a write happen exactly once.

Workers on several hosts share nothing but the database, so "did anyone do this already?" and
"I did it" must be one statement that exactly one writer wins. :func:`insert_once` is an
``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL: a conflict is an answer (someone
else got there first), never an error, so it does not abort a PostgreSQL transaction the caller
still needs. Other backends run the insert in a savepoint and read a conflict off the
``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_once(connection: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
    """Insert ``values`` into ``table``; False (and nothing written) if a row with the same
    primary or unique key exists, or a concurrent transaction inserted one first."""
    dialect = connection.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        # RETURNING says whether the row went in (psycopg reports no rowcount for it).
        key = next(iter(table.primary_key.columns))
        statement = insert.values(**values).on_conflict_do_nothing().returning(key)
        return connection.execute(statement).first() is not None
    try:
        with connection.begin_nested():
            connection.execute(sa.insert(table).values(**values))
    except exc.IntegrityError:
        return False
    return True

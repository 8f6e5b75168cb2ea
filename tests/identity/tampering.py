"""What an attacker with write access to the registry database does, on SQLite and PostgreSQL.

The identity tests edit the tables behind the registry's back and check that ``verify_log`` finds
it. The statements are the same on both backends except dropping the append-only triggers (two
per table on SQLite, one ``ON table`` trigger on PostgreSQL); JSON bodies are edited in Python
and written back through the table's own column type, so no backend's JSON functions are needed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from gatekeeper.adapters.registry.tables import identity_keys, identity_log

#: A timestamp for hand-written rows.
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def tampering(url: str) -> Iterator[sa.Connection]:
    """One transaction on the registry database, as its owner (no registry code involved)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def drop_log_triggers(connection: sa.Connection) -> None:
    """Remove the identity log's append-only triggers (what the database's owner can do)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("DROP TRIGGER identity_log_append_only ON identity_log"))
        return
    connection.execute(sa.text("DROP TRIGGER identity_log_no_update"))
    connection.execute(sa.text("DROP TRIGGER identity_log_no_delete"))


def edit_log_body(
    connection: sa.Connection,
    seq: int,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    **columns: Any,
) -> None:
    """Replace entry ``seq``'s body with ``edit(body)`` (and any other ``columns``)."""
    body = connection.execute(sa.select(identity_log.c.body).where(identity_log.c.seq == seq)).one()
    connection.execute(
        sa.update(identity_log)
        .where(identity_log.c.seq == seq)
        .values(body=edit(dict(body[0])), **columns)
    )


def insert_key(connection: sa.Connection, **values: Any) -> None:
    """A row in the key table written by hand, with no log entry behind it."""
    row: dict[str, Any] = {
        "valid_from": LONG_AGO,
        "valid_until": None,
        "revoked_at": None,
        "revoked_reason": "",
        "registered_at": LONG_AGO,
        "log_seq": 99,
        **values,
    }
    connection.execute(sa.insert(identity_keys).values(**row))

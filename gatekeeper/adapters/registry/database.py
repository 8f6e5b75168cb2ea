"""One open registry database: the engine, its schema brought up to date, and transactions.

The access registry and the policy store share the database (SQLite by default, PostgreSQL by
URL) and everything about holding it open; each adds its own tables' operations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Self

from sqlalchemy.engine import Connection

from gatekeeper.adapters.registry import migrate
from gatekeeper.adapters.registry.engine import (
    SQLITE_BUSY_TIMEOUT,
    WRITE_OPTION,
    create_registry_engine,
    translated,
)


class Database:
    """An engine on ``url``, migrated to the newest schema when opened. No Temporal imports.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/.gatekeeper/registry.db`` or
            ``postgresql+psycopg://user@host/gatekeeper``.
        busy_timeout: seconds a SQLite writer waits for another writer's lock; past it the
            operation fails with a retryable ``RegistryError``.
    """

    def __init__(self, url: str, *, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> None:
        self._engine = create_registry_engine(url, busy_timeout=busy_timeout)
        try:
            self.revision = migrate.upgrade(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        with translated(action), self._engine.connect() as connection, connection.begin():
            yield connection

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with (
            translated(action),
            self._engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection

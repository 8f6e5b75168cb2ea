"""One open registry database: the engine, its schema brought up to date, and transactions.

Every store (access registry, policy store, send journal, audit store, ...) shares the database
(SQLite by default, PostgreSQL by URL) and everything about holding it open; each adds its own
tables' operations.

The stores of one process share one engine, and so one connection pool, per database (URL and
busy timeout), and the schema is checked once, by the first to open it: a worker opens eight
stores and used to hold eight pools and run eight migration checks. The engine is
reference-counted: each store's :meth:`Database.close` gives its reference back, and the last
disposes of the engine. A forked child starts with empty pools (its parent's connections are
never used by two processes: :func:`_after_fork`); a spawned process has its own engines anyway.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from sqlalchemy.engine import Connection, Engine

from gatekeeper.adapters.registry import migrate
from gatekeeper.adapters.registry.engine import (
    SQLITE_BUSY_TIMEOUT,
    WRITE_OPTION,
    create_registry_engine,
    translated,
)


@dataclass(eq=False)
class _Shared:
    """One engine of this process and the stores holding it."""

    key: tuple[str, float]
    engine: Engine
    #: Stores holding the engine (open and not yet closed).
    holders: int = 0
    #: The schema revision once checked (and migrated) by the first opener; ``None`` before.
    revision: str | None = None
    #: Serialises the first openers' schema check (others wait for it, then skip it).
    opening: threading.Lock = field(default_factory=threading.Lock)


#: The engines this process holds, by (URL, busy timeout); guarded by ``_lock``.
_engines: dict[tuple[str, float], _Shared] = {}
_lock = threading.Lock()


def _acquire(url: str, busy_timeout: float) -> tuple[_Shared, str]:
    """The process's engine for ``url``, created on first use, its schema at head (the
    revision); one more holder. Raises what opening or migrating raises (the hold is given back
    then)."""
    key = (url, float(busy_timeout))
    with _lock:
        shared = _engines.get(key)
        if shared is None:
            # Creating an engine connects to nothing, so holding the lock here is brief.
            shared = _Shared(key, create_registry_engine(url, busy_timeout=busy_timeout))
            _engines[key] = shared
        shared.holders += 1
    try:
        with shared.opening:
            revision = shared.revision
            if revision is None:
                revision = shared.revision = migrate.upgrade(shared.engine)
    except BaseException:
        _release(shared)
        raise
    return shared, revision


def _release(shared: _Shared) -> None:
    """One holder fewer; the last disposes of the engine (closing its pooled connections)."""
    with _lock:
        shared.holders -= 1
        if shared.holders > 0:
            return
        if _engines.get(shared.key) is shared:
            del _engines[shared.key]
    shared.engine.dispose()


def open_engines() -> int:
    """How many engines this process holds (one per database its open stores use)."""
    with _lock:
        return len(_engines)


def _after_fork() -> None:
    """In a forked child: the engines stay (stores the parent opened keep working) but their
    pools start empty, leaving the parent's connections to the parent (``dispose(close=False)``
    drops them without closing them, which would close the parent's too). The locks are new:
    a thread of the parent may have held one at the fork, and that thread does not exist here."""
    global _lock
    _lock = threading.Lock()
    for shared in _engines.values():
        shared.opening = threading.Lock()
        shared.engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork)


class Database:
    """An engine on ``url``, migrated to the newest schema when opened. No Temporal imports.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/.gatekeeper/registry.db`` or
            ``postgresql+psycopg://user@host/gatekeeper``.
        busy_timeout: seconds a SQLite writer waits for another writer's lock; past it the
            operation fails with a retryable ``RegistryError``.
    """

    def __init__(self, url: str, *, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> None:
        shared, self.revision = _acquire(url, busy_timeout)
        self._shared: _Shared | None = shared
        self._engine: Engine = shared.engine

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Give back this store's hold on the shared engine (once; closing again does nothing).
        The last store of the process to close disposes of the engine."""
        with _lock:
            shared, self._shared = self._shared, None
        if shared is not None:
            _release(shared)

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
    def _read(self, action: str, *, consistent: bool = False) -> Iterator[Connection]:
        """A read transaction. ``consistent``: every statement sees the same committed state
        (PostgreSQL ``REPEATABLE READ``; a SQLite read transaction always does)."""
        with translated(action), self._engine.connect() as connection:
            if consistent and connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        with (
            translated(action),
            self._engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection

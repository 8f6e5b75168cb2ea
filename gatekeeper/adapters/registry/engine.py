"""Opening the registry database: SQLite (the embedded default) or PostgreSQL, from one URL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from gatekeeper.errors import ConfigError, GatekeeperError, RegistryError
from gatekeeper.redact import mask

#: Execution option marking a connection that will write; SQLite then takes the write lock at
#: BEGIN, so two writers queue on the busy timeout instead of failing halfway through.
WRITE_OPTION = "gatekeeper_write"
#: How long a SQLite writer waits for another's lock before giving up (retryably).
SQLITE_BUSY_TIMEOUT = 30.0

#: The connection pool of a process's one engine per database (every store of the process shares
#: it, :mod:`gatekeeper.adapters.registry.database`). A worker runs at most
#: ``workers.worker.DEFAULT_ACTIVITY_THREADS`` (16) activities at once, each holding at most one
#: connection for one short transaction at a time; besides them only the update validators' key
#: lookups, the reconciler and startup read the database. So: ``POOL_SIZE`` connections stay open
#: once used (what a worker under steady load reuses: a transaction lasts milliseconds, so a few
#: serve 16 threads' turns; an idle worker keeps only what it has used, 1-2), and up to
#: ``MAX_OVERFLOW`` more open for a burst and close when returned, so all 16 activity threads and
#: the validators never wait on the pool (21 + 4 = 25 at most, against PostgreSQL's default
#: ``max_connections`` of 100: four workers per database, or raise it). A thread that still finds
#: every connection taken waits ``POOL_TIMEOUT`` seconds, then fails retryably (``translated``).
#: Keeping 4 rather than 16 costs nothing measurable: 16 threads claiming and reading deliveries
#: on PostgreSQL ran 2,500-2,900 transactions/s with 4 kept and 2,100-2,200 with 16, opening 15
#: connections either way (a returned overflow connection is closed only when 4 wait idle).
#: ``tests/registry/test_shared_engine.py`` checks the sum still covers the activity threads.
POOL_SIZE = 4
MAX_OVERFLOW = 21
POOL_TIMEOUT = 30.0


def create_registry_engine(url: str, *, busy_timeout: float = SQLITE_BUSY_TIMEOUT) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and real transactions.

    ``busy_timeout`` (seconds) is how long SQLite waits for a lock held by another writer.

    Raises:
        ConfigError: the URL is malformed or its driver is not installed.
    """
    shown = repr(mask(url))  # the URL as messages show it: never with its password
    try:
        parsed = sa.make_url(url)
        shown = repr(parsed.render_as_string(hide_password=True))
        pool: dict[str, Any] = {
            "pool_size": POOL_SIZE,
            "max_overflow": MAX_OVERFLOW,
            "pool_timeout": POOL_TIMEOUT,
        }
        if parsed.get_backend_name() != "sqlite":
            return sa.create_engine(parsed, pool_pre_ping=True, **pool)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one in-memory database per thread (SingletonThreadPool): nothing to size
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout}, **pool)
    except (exc.ArgumentError, exc.NoSuchModuleError, ValueError) as err:
        raise ConfigError(f"registry URL {shown}: {_first_line(err)}") from err
    except ModuleNotFoundError as err:
        raise ConfigError(f"registry URL {shown} needs the {err.name} driver installed") from err
    except OSError as err:
        raise ConfigError(f"registry URL {shown}: {err}") from err
    _configure_sqlite(engine, int(busy_timeout * 1000))
    return engine


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn database errors into one-line ``RegistryError``s (the registry's one boundary)."""
    try:
        yield
    except GatekeeperError:
        raise
    except exc.IntegrityError as err:
        # Usually a concurrent writer got there first; trying again reads what it wrote.
        raise RegistryError(f"{action}: conflicting write: {_first_line(err.orig)}") from err
    except exc.TimeoutError as err:
        # Every pooled connection stayed in use for POOL_TIMEOUT seconds: busy, not broken.
        raise RegistryError(
            f"{action}: database busy: no free connection in {POOL_TIMEOUT:g} s"
        ) from err
    except (exc.OperationalError, exc.InterfaceError) as err:
        raise RegistryError(f"{action}: database unavailable: {_first_line(err.orig)}") from err
    except exc.DisconnectionError as err:
        raise RegistryError(f"{action}: database unavailable: {_first_line(err)}") from err
    except exc.SQLAlchemyError as err:
        raise RegistryError(f"{action}: {_first_line(err)}", retryable=False) from err


def _first_line(err: object) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

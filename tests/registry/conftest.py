"""A fresh registry per test, and one with the standard partners and people.

Every registry test runs on a SQLite file. Set ``GATEKEEPER_TEST_POSTGRES_URL`` (for example
``postgresql+psycopg://gk@127.0.0.1:5432/gatekeeper``, a database the tests may wipe) to run them
on PostgreSQL as well; its ``public`` schema is dropped before each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.registry import AccessRegistry
from tests.registry.builders import populate

POSTGRES_URL = os.environ.get("GATEKEEPER_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def _empty_postgres() -> str:
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database on each backend under test."""
    return _empty_postgres() if request.param == "postgresql" else sqlite_url(tmp_path / "r.db")


@pytest.fixture
def registry(empty_url: str) -> Iterator[AccessRegistry]:
    with AccessRegistry(empty_url) as opened:
        yield opened


@pytest.fixture
def world(registry: AccessRegistry) -> AccessRegistry:
    populate(registry)
    return registry

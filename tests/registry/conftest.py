"""A fresh registry per test, and one with the standard partners and people.

Every registry test runs twice: on a SQLite file and on a fresh database of a real PostgreSQL
server (:mod:`tests.databases`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gatekeeper.adapters.registry import AccessRegistry
from tests.databases import sqlite_url
from tests.registry.builders import populate

__all__ = ["sqlite_url"]


@pytest.fixture
def empty_url(database_url: str) -> str:
    """The URL of an empty database on each backend under test."""
    return database_url


@pytest.fixture
def registry(empty_url: str) -> Iterator[AccessRegistry]:
    with AccessRegistry(empty_url) as opened:
        yield opened


@pytest.fixture
def world(registry: AccessRegistry) -> AccessRegistry:
    populate(registry)
    return registry

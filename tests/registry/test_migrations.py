"""The registry builds its own schema with alembic, once, and the schema matches the tables."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gatekeeper.adapters.registry import AccessRegistry, Partner
from gatekeeper.adapters.registry.engine import create_registry_engine
from gatekeeper.adapters.registry.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)
from gatekeeper.adapters.registry.tables import metadata
from gatekeeper.errors import ConfigError
from gatekeeper.models.enums import VettingTier
from tests.registry.conftest import sqlite_url

TABLES = {
    "partners",
    "people",
    "grants",
    "access_orders",
    "public_launches",
    "operations",
    "policies",
    "policy_default",
    "identity_keys",
    "identity_log",
    "audit_anchors",
    "deliveries",
    "audit_events",
    "clearinghouse_receipts",
    "launches",
    "passkey_enrollments",
    "identity_sso_links",
    "console_sessions_ended",
    "access_clock",
    "alembic_version",
}


class TestUpgradeOnOpen:
    """Opening an empty database migrates it to head; opening it again changes nothing."""

    def test_a_fresh_file_in_a_missing_directory_is_created_at_head(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "registry.db"

        with AccessRegistry(sqlite_url(path)) as registry:
            assert registry.revision == head_revision()

        engine = sa.create_engine(sqlite_url(path))
        assert set(sa.inspect(engine).get_table_names()) == TABLES
        assert current_revision(engine) == head_revision()
        engine.dispose()

    def test_reopening_keeps_data_and_does_not_migrate_again(self, empty_url: str) -> None:
        url = empty_url
        with AccessRegistry(url) as registry:
            registry.add_partner(
                Partner(id="acme", tier=VettingTier.INVITE_ONLY, jurisdiction="us")
            )

        with AccessRegistry(url) as registry:
            assert [p.id for p in registry.list_partners()] == ["acme"]
        engine = create_registry_engine(url)
        assert upgrade(engine) == head_revision()
        engine.dispose()

    def test_concurrent_openers_of_an_empty_database_all_succeed(self, empty_url: str) -> None:
        url = empty_url
        errors: list[BaseException] = []

        def open_once() -> None:
            try:
                AccessRegistry(url).close()
            except BaseException as err:  # reported below, with the thread's error
                errors.append(err)

        threads = [threading.Thread(target=open_once) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        engine = sa.create_engine(url)
        assert current_revision(engine) == head_revision()
        engine.dispose()


class TestSchema:
    """The migrations build exactly the tables in ``tables.py``, and can be undone."""

    def test_migrated_schema_has_no_drift_from_the_table_definitions(self, empty_url: str) -> None:
        AccessRegistry(empty_url).close()
        engine = sa.create_engine(empty_url)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        engine.dispose()

    def test_downgrade_to_base_and_upgrade_again(self, empty_url: str) -> None:
        AccessRegistry(empty_url).close()
        engine = create_registry_engine(empty_url)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
        assert current_revision(engine) is None

        upgrade(engine)

        assert set(sa.inspect(engine).get_table_names()) == TABLES
        engine.dispose()

    def test_sqlite_runs_in_wal_mode_with_foreign_keys(self, tmp_path: Path) -> None:
        engine = create_registry_engine(sqlite_url(tmp_path / "registry.db"))
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        engine.dispose()


class TestBadUrls:
    """A URL that cannot work is a configuration error, in one line."""

    def test_malformed_url(self) -> None:
        with pytest.raises(ConfigError, match="registry URL"):
            AccessRegistry("not a url")

    def test_missing_driver(self) -> None:
        with pytest.raises(ConfigError, match="registry URL"):
            AccessRegistry("postgresql+nosuchdriver://localhost/gatekeeper")

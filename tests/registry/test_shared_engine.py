"""The stores of one process share one engine (one connection pool, one schema check) per
database, and give it back when the last of them closes; another process never uses it."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gatekeeper.adapters import DeliveryStore
from gatekeeper.adapters.policy_store import PolicyStore
from gatekeeper.adapters.registry import AccessRegistry, Partner, migrate
from gatekeeper.adapters.registry.database import Database, open_engines
from gatekeeper.adapters.registry.engine import (
    MAX_OVERFLOW,
    POOL_SIZE,
    POOL_TIMEOUT,
    translated,
)
from gatekeeper.errors import RegistryError
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models.enums import VettingTier
from workers.worker import DEFAULT_ACTIVITY_THREADS


def partner(name: str) -> Partner:
    return Partner(id=name, tier=VettingTier.INVITE_ONLY, jurisdiction="us")


def server_connections(url: str) -> int | None:
    """Connections the PostgreSQL server has open to ``url``'s database, besides this probe's
    (``None`` on SQLite, which has no server)."""
    if sa.make_url(url).get_backend_name() != "postgresql":
        return None
    probe = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with probe.connect() as connection:
            return int(
                connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    finally:
        probe.dispose()


def backend_pid(store: Database) -> int | None:
    """The server process serving ``store``'s next connection (``None`` on SQLite)."""
    with store._read("read the backend") as connection:
        if connection.dialect.name != "postgresql":
            return None
        return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def eventually_equal(probe: Callable[[], object], expected: object, within: float = 5.0) -> None:
    """A server notices a closed connection a moment after the client closed it."""
    deadline = time.monotonic() + within
    while (found := probe()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == expected


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The schema checks run from now on (each a call of ``migrate.upgrade``, still run)."""
    seen: list[str] = []
    real = migrate.upgrade

    def counted(engine: sa.Engine) -> str:
        seen.append(str(engine.url))
        return real(engine)

    monkeypatch.setattr(migrate, "upgrade", counted)
    return seen


class TestOneEnginePerDatabase:
    """Stores of different kinds on one URL share one engine and pool, and check the schema
    once; another busy timeout is another engine."""

    def test_stores_share_an_engine_a_pool_and_one_schema_check(
        self, database_url: str, upgrades: list[str]
    ) -> None:
        before = open_engines()
        with (
            AccessRegistry(database_url) as registry,
            PolicyStore(database_url) as policies,
            DeliveryStore(database_url) as deliveries,
            IdentityRegistry(database_url) as identity,
        ):
            assert open_engines() == before + 1
            assert registry._engine is policies._engine is deliveries._engine
            assert identity._engine is registry._engine
            assert len(upgrades) == 1
            assert registry.revision == policies.revision == migrate.head_revision()

            registry.add_partner(partner("acme"))
            assert policies.list() == []
            assert deliveries.claim("r-1:window_opened:ops", channel="log", channel_type="log")
            assert identity.root() is None
            assert [p.id for p in registry.list_partners()] == ["acme"]

            # One after the other, the four stores used one pooled connection.
            assert registry._engine.pool.checkedin() == 1
            assert server_connections(database_url) in (None, 1)
        assert open_engines() == before

    def test_another_busy_timeout_is_another_engine(self, database_url: str) -> None:
        with (
            AccessRegistry(database_url) as one,
            AccessRegistry(database_url, busy_timeout=2) as two,
        ):
            assert one._engine is not two._engine
            one.add_partner(partner("acme"))
            assert [p.id for p in two.list_partners()] == ["acme"]

    def test_the_pool_is_sized_for_the_workers_activity_threads(self, database_url: str) -> None:
        # Every activity thread, the validators' key lookups and the reconciler find a
        # connection without waiting for another to be returned.
        assert POOL_SIZE + MAX_OVERFLOW >= DEFAULT_ACTIVITY_THREADS + 4
        with AccessRegistry(database_url) as registry:
            pool = registry._engine.pool
            assert isinstance(pool, sa.pool.QueuePool)
            assert pool.size() == POOL_SIZE
            assert pool._max_overflow == MAX_OVERFLOW
            assert registry._engine.dialect.name == "sqlite" or registry._engine.pool._pre_ping

    def test_concurrent_openers_share_one_engine_and_check_the_schema_once(
        self, database_url: str, upgrades: list[str]
    ) -> None:
        before = open_engines()
        errors: list[BaseException] = []
        engines: list[sa.Engine] = []
        holding = threading.Barrier(6)

        def open_and_use() -> None:
            try:
                with AccessRegistry(database_url) as registry:
                    engines.append(registry._engine)
                    registry.list_partners()
                    holding.wait(timeout=30)  # all six open at once
            except BaseException as err:  # reported below, with the thread's error
                errors.append(err)

        threads = [threading.Thread(target=open_and_use) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert len({id(engine) for engine in engines}) == 1
        assert len(upgrades) == 1
        assert open_engines() == before


class TestClosing:
    """Closing a store gives back its hold: the others keep working on the same pool, and the
    last to close disposes of the engine and its connections."""

    def test_closing_one_leaves_the_other_working(self, database_url: str) -> None:
        registry = AccessRegistry(database_url)
        policies = PolicyStore(database_url)
        try:
            registry.add_partner(partner("acme"))
            engine = registry._engine
            registry.close()
            registry.close()  # closing twice gives back one hold, not two

            assert policies._engine is engine
            assert policies.list() == []
            assert engine.pool.checkedin() == 1, "the pool was disposed with a holder left"
            with AccessRegistry(database_url) as again:
                assert again._engine is engine
                assert [p.id for p in again.list_partners()] == ["acme"]
        finally:
            policies.close()

    def test_the_last_to_close_disposes_of_the_engine(self, database_url: str) -> None:
        before = open_engines()
        registry = AccessRegistry(database_url)
        deliveries = DeliveryStore(database_url)
        registry.list_partners()
        deliveries.delivered("r-1:window_opened:ops")
        engine = registry._engine
        assert server_connections(database_url) in (None, 1)

        registry.close()
        deliveries.close()

        assert open_engines() == before
        assert engine.pool.checkedin() == 0
        if server_connections(database_url) is not None:
            eventually_equal(lambda: server_connections(database_url), 0)
        with AccessRegistry(database_url) as reopened:
            assert reopened._engine is not engine

    def test_a_database_that_cannot_be_opened_leaves_no_engine(self, database_url: str) -> None:
        before = open_engines()
        url = sa.make_url(database_url)
        if url.get_backend_name() == "postgresql":
            missing = url.set(database=f"{url.database}_missing")
        else:
            directory = f"{url.database}.d"
            os.mkdir(directory)  # a directory where the database file must be
            missing = url.set(database=directory)
        with pytest.raises(RegistryError) as refused:
            AccessRegistry(missing.render_as_string(hide_password=False))
        assert "database unavailable" in str(refused.value)
        assert len(str(refused.value).splitlines()) == 1, str(refused.value)
        assert open_engines() == before


class TestTranslation:
    """A pool with every connection taken for ``POOL_TIMEOUT`` is a retryable one-line error."""

    def test_an_exhausted_pool_is_busy_not_broken(self, database_url: str) -> None:
        engine = sa.create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
        try:
            with (
                engine.connect(),
                pytest.raises(RegistryError) as busy,
                translated("list partners"),
            ):
                engine.connect()
        finally:
            engine.dispose()
        assert busy.value.retryable
        assert str(busy.value) == (
            f"list partners: database busy: no free connection in {POOL_TIMEOUT:g} s"
        )


def _use_in_a_spawned_process(url: str) -> str:
    """In a fresh interpreter: open two stores, write through one, read through the other."""
    with AccessRegistry(url) as registry, PolicyStore(url) as policies:
        registry.add_partner(partner("from-child"))
        policies.list()
        return json.dumps(
            {
                "engines": open_engines(),
                "shared": registry._engine is policies._engine,
                "backend": backend_pid(registry),
                "partners": [p.id for p in registry.list_partners()],
            }
        )


class TestOtherProcesses:
    """A forked child never uses its parent's pooled connections (which would interleave two
    processes' traffic on one socket); a spawned process opens its own engine."""

    def test_a_forked_child_opens_its_own_connections(self, database_url: str) -> None:
        with AccessRegistry(database_url) as registry:
            registry.add_partner(partner("acme"))
            parent_backend = backend_pid(registry)
            assert registry._engine.pool.checkedin() == 1
            reader, writer = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: report, and leave without running pytest's teardown
                code = 1
                try:
                    inherited = registry._engine.pool.checkedin()
                    with AccessRegistry(database_url) as fresh:
                        same_engine = fresh._engine is registry._engine
                        fresh.add_partner(partner("forked"))
                    report = {
                        "inherited": inherited,
                        "same_engine": same_engine,
                        "backend": backend_pid(registry),
                        "partners": [p.id for p in registry.list_partners()],
                    }
                    os.write(writer, json.dumps(report).encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(writer)
            with os.fdopen(reader) as pipe:
                report = json.loads(pipe.read() or "{}")
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, report

            assert report["inherited"] == 0, "the child's pool held the parent's connections"
            assert report["same_engine"], "stores opened in the child share the child's engine"
            assert report["partners"] == ["acme", "forked"]
            if parent_backend is not None:
                assert report["backend"] != parent_backend
            # The parent's pooled connection survived the child's exit and still works.
            assert backend_pid(registry) == parent_backend
            assert [p.id for p in registry.list_partners()] == ["acme", "forked"]

    def test_a_spawned_process_has_its_own_engine(self, database_url: str) -> None:
        with AccessRegistry(database_url) as registry:
            parent_backend = backend_pid(registry)
            context = multiprocessing.get_context("spawn")
            with context.Pool(1) as pool:
                report: dict[str, Any] = json.loads(
                    pool.apply(_use_in_a_spawned_process, (database_url,))
                )
            assert report["engines"] == 1
            assert report["shared"] is True
            assert report["partners"] == ["from-child"]
            if parent_backend is not None:
                assert report["backend"] != parent_backend
            assert [p.id for p in registry.list_partners()] == ["from-child"]

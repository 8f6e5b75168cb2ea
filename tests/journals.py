"""Fixtures for the stores a worker keeps in the registry database, on both backends.

Import the fixtures a test module needs (``from tests.journals import deliveries, journal``):
each takes :func:`tests.databases.database_url`, so every test using them runs on SQLite and on
PostgreSQL, and closes what it opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse
from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.adapters.launch import DatabaseLaunchPublisher
from gatekeeper.adapters.notifier import ChannelRegistry
from gatekeeper.adapters.outbox import Outbox
from gatekeeper.channels import SendJournal


@pytest.fixture
def deliveries(database_url: str) -> Iterator[DeliveryStore]:
    """The send journal's table on a fresh database."""
    with DeliveryStore(database_url) as store:
        yield store


@pytest.fixture
def journal(deliveries: DeliveryStore, tmp_path: Path) -> SendJournal:
    """A worker's journal: the database's deliveries, mirrored to ``tmp_path/outbox.jsonl``."""
    return SendJournal(deliveries, Outbox(tmp_path / "outbox.jsonl"))


@pytest.fixture
def embedded(journal: SendJournal) -> ChannelRegistry:
    """The built-in channels (log, outbox) over :func:`journal`."""
    return ChannelRegistry.embedded(journal)


@pytest.fixture
def audit_store(database_url: str) -> Iterator[DatabaseAuditStore]:
    with DatabaseAuditStore(database_url) as store:
        yield store


@pytest.fixture
def clearinghouse(database_url: str) -> Iterator[DatabaseClearinghouse]:
    with DatabaseClearinghouse(database_url) as store:
        yield store


@pytest.fixture
def launcher(database_url: str) -> Iterator[DatabaseLaunchPublisher]:
    with DatabaseLaunchPublisher(database_url) as store:
        yield store


def outbox_lines(path: Path) -> list[dict[str, object]]:
    """The outbox file's lines (the mirror), oldest first."""
    return Outbox(path).read()


class Journals:
    """The send journal of one test's database, for modules whose helpers open channels on a
    path (``journal_at(tmp_path / "outbox.jsonl")``): every journal shares the database, as
    workers do, and mirrors to the outbox file it is given."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.store = DeliveryStore(url)

    def journal(self, outbox: Path) -> SendJournal:
        return SendJournal(self.store, Outbox(outbox))

    def close(self) -> None:
        self.store.close()


_current: list[Journals] = []


@pytest.fixture
def journals(database_url: str) -> Iterator[Journals]:
    """This test's :class:`Journals` (use the module with ``pytestmark =
    pytest.mark.usefixtures("journals")`` and open journals with :func:`journal_at`)."""
    found = Journals(database_url)
    _current.append(found)
    try:
        yield found
    finally:
        _current.remove(found)
        found.close()


def journal_at(outbox: Path) -> SendJournal:
    """A journal on the running test's database, mirroring to ``outbox``."""
    if not _current:
        raise RuntimeError("the test module does not use the 'journals' fixture")
    return _current[-1].journal(outbox)


def unrecord(url: str, key: str) -> None:
    """Turn the delivery of ``key`` back into a bare claim: as if the worker that sent it died
    before recording it."""
    from gatekeeper.adapters.registry.tables import deliveries as table

    engine = sa.create_engine(url)
    try:
        with engine.begin() as db:
            changed = db.execute(
                sa.update(table).where(table.c.key == key).values(delivered_at=None, record=None)
            ).rowcount
    finally:
        engine.dispose()
    assert changed == 1, f"no delivery {key} to unrecord"


@pytest.fixture
def break_database(request: pytest.FixtureRequest, database_url: str) -> Callable[[Any], None]:
    """Make the test's database unreachable for ``store`` (a ``Database`` opened on it): its
    pooled connections are dropped and the database itself removed (the SQLite file replaced by
    a directory; the PostgreSQL database dropped), so its next operation fails as an outage."""

    def broken(store: Any) -> None:
        store.close()  # the pool's connections go; the next operation connects again
        url = sa.make_url(database_url)
        if url.get_backend_name() == "sqlite":
            assert url.database is not None
            path = Path(url.database)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.mkdir()
        else:
            request.getfixturevalue("postgres").drop_database(database_url)

    return broken

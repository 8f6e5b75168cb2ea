"""The access change feed: every registry write moves the access clock, and a checker's
``update()`` applies just the changed rows, ending where a fresh snapshot would.

Each test runs on a SQLite file and on a real PostgreSQL database (``database_url``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from gatekeeper.access import (
    AccessChanges,
    AccessChecker,
    AccessClock,
    AccessDecision,
    Snapshot,
)
from gatekeeper.adapters.registry import AccessRegistry, Partner, RegisteredPerson
from gatekeeper.adapters.registry.engine import WRITE_OPTION, create_registry_engine
from gatekeeper.adapters.registry.migrate import alembic_config, upgrade
from gatekeeper.adapters.registry.models import PublicLaunch
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.orders import ExemptOrderRequest
from gatekeeper.models.policy import Cohort
from tests.registry.builders import T0, grant_request, lift, order, revoke_request

PEOPLE = ["alice", "bruno", "casey", "drifter", "greta", "sam", "ivan", "walker", "zed", "ghost"]
MODELS = ["aurora", "borealis", "nova"]
VARIANTS = [None, "2"]
FOREIGN = NationalityStatus.FOREIGN_PERSON

Key = tuple[str, str, Surface, str | None]


class Counting:
    """The registry as a checker's source, counting how often each read is made."""

    def __init__(self, registry: AccessRegistry) -> None:
        self.registry = registry
        self.snapshots = 0
        self.clocks = 0
        self.changes = 0

    def snapshot(self) -> Snapshot:
        self.snapshots += 1
        return self.registry.snapshot()

    def access_clock(self) -> AccessClock:
        self.clocks += 1
        return self.registry.access_clock()

    def access_changes(self, since: int) -> AccessChanges:
        self.changes += 1
        return self.registry.access_changes(since)


def decisions(checker: AccessChecker) -> dict[Key, AccessDecision]:
    """Every person x model x surface x variant decision of ``checker``."""
    return {
        (person, model, surface, variant): checker.check(model, person, surface, variant)
        for person in PEOPLE
        for model in MODELS
        for surface in Surface
        for variant in VARIANTS
    }


def fresh(registry: AccessRegistry) -> dict[Key, AccessDecision]:
    """What a checker built from a new snapshot decides."""
    return decisions(AccessChecker(registry))


@pytest.fixture
def plain_sql(empty_url: str) -> Iterator[Callable[[str], None]]:
    """Run SQL on the registry's database past the registry's code (its own engine; on
    SQLite taking the write lock at BEGIN, as every writer must to wait for another)."""
    engine = create_registry_engine(empty_url)

    def run(statement: str) -> None:
        with (
            engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            connection.exec_driver_sql(statement)

    try:
        yield run
    finally:
        engine.dispose()


def _exemption() -> ExemptOrderRequest:
    return ExemptOrderRequest(
        idempotency_key="ec-1:exempt:globex",
        order_id="ec-1",
        partners=["globex"],
        models=["aurora"],
        by="olivia.ops",
        reason="licence granted",
        at=T0 + timedelta(hours=5),
    )


def _launch() -> PublicLaunch:
    return PublicLaunch(
        release_id="nova-1",
        model_name="nova",
        model_version="2",
        surface=Surface.APP,
        launch_id="launch-nova-1",
        published_at=T0 + timedelta(hours=6),
    )


#: Each kind of registry write, in an order where each one changes something a check sees.
STEPS: list[tuple[str, Callable[[AccessRegistry, Callable[[str], None]], Any]]] = [
    (
        "add partner",
        lambda r, _: r.add_partner(
            Partner(id="umbrella", tier=VettingTier.INVITE_ONLY, jurisdiction="jp")
        ),
    ),
    (
        "add person",
        lambda r, _: r.add_person(
            RegisteredPerson(id="zed", partner_id="umbrella", nationality=FOREIGN, location="jp")
        ),
    ),
    (
        "grant",
        lambda r, _: r.grant_for_cohorts(
            grant_request(key="borealis-1:grant", release="borealis-1", model="borealis")
        ),
    ),
    ("tier change", lambda r, _: r.set_partner_tier("shield", VettingTier.IDENTITY_VERIFIED)),
    ("apply order", lambda r, _: r.apply_order(order("ec-1", scope="foreign_persons"))),
    (
        "apply org-wide order",
        lambda r, _: r.apply_order(
            order(
                "ec-2",
                models=["borealis"],
                scope="jurisdiction:jp",
                at=T0 + timedelta(hours=2),
            )
        ),
    ),
    ("exempt", lambda r, _: r.exempt_order(_exemption())),
    ("lift", lambda r, _: r.lift_order(lift("ec-2"))),
    ("revoke", lambda r, _: r.revoke(revoke_request())),
    ("public launch", lambda r, _: r.record_public_launch(_launch())),
    (
        "plain SQL update",
        lambda _, sql: sql(
            "UPDATE people SET nationality = 'foreign_person', location = NULL WHERE id = 'sam'"
        ),
    ),
]


class TestEveryWriteMovesTheClock:
    """Every kind of write moves the access clock, and ``update()`` then decides everything
    exactly as a checker built from a fresh snapshot, without reading a snapshot itself."""

    def test_each_write_is_applied_incrementally(
        self, world: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        world.grant_for_cohorts(grant_request(surfaces=[Surface.API, Surface.APP]))
        source = Counting(world)
        checker = AccessChecker(source)
        assert checker.seq == world.access_clock().seq > 0

        for name, write in STEPS:
            before_clock = world.access_clock()
            before = decisions(checker)
            write(world, plain_sql)
            after_clock = world.access_clock()

            assert after_clock.seq > before_clock.seq, name
            assert after_clock.epoch == before_clock.epoch, name
            assert checker.update() is True, name
            assert checker.seq == after_clock.seq, name
            expected = fresh(world)
            assert decisions(checker) == expected, name
            if name != "add partner":  # a partner without people changes no check
                assert expected != before, f"{name} changed no decision: the step tests nothing"
        assert source.snapshots == 1  # only the first, when the checker was built
        assert source.changes == len(STEPS)

    def test_a_plain_sql_delete_moves_the_epoch_and_reloads_everything(
        self, world: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        world.grant_for_cohorts(grant_request(surfaces=[Surface.API, Surface.APP]))
        source = Counting(world)
        checker = AccessChecker(source)
        before = world.access_clock()

        plain_sql("DELETE FROM grants WHERE surface = 'app'")

        after = world.access_clock()
        assert (after.seq > before.seq, after.epoch > before.epoch) == (True, True)
        assert checker.update() is True
        assert source.snapshots == 2
        assert checker.seq == after.seq
        assert decisions(checker) == fresh(world)
        assert not checker.check("aurora", "alice", Surface.APP).allowed

    def test_moving_a_grant_to_another_partner_reloads_everything(
        self, world: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        """A reader finds a grant by partner, model and surface: an update changing those
        cannot be applied in place, so it counts as a delete."""
        world.grant_for_cohorts(grant_request())
        source = Counting(world)
        checker = AccessChecker(source)
        epoch = world.access_clock().epoch

        plain_sql("UPDATE grants SET partner_id = 'initech' WHERE partner_id = 'acme'")

        assert world.access_clock().epoch > epoch
        assert checker.update() is True
        assert source.snapshots == 2
        assert decisions(checker) == fresh(world)
        assert checker.check("aurora", "ivan").allowed is False  # initech's tier is not admitted
        assert checker.check("aurora", "alice").allowed is False

    def test_the_clock_row_cannot_be_deleted(
        self, registry: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        with pytest.raises(sa.exc.DatabaseError, match="access clock row cannot be deleted"):
            plain_sql("DELETE FROM access_clock")
        assert registry.access_clock() == AccessClock(seq=0, epoch=0)


class TestUpdate:
    """``update()`` reads the clock, and changes only when it moved."""

    def test_nothing_changed_reads_only_the_clock_and_confirms_the_view(
        self, world: AccessRegistry
    ) -> None:
        source = Counting(world)
        checker = AccessChecker(source)
        taken = checker.taken_at

        assert checker.update() is False

        assert (source.snapshots, source.clocks, source.changes) == (1, 1, 0)
        assert checker.taken_at > taken

    def test_the_changes_since_a_seq_are_only_the_rows_written_after_it(
        self, world: AccessRegistry
    ) -> None:
        since = world.access_clock().seq
        world.set_partner_tier("acme", VettingTier.INVITE_ONLY)
        world.grant_for_cohorts(grant_request())

        changes = world.access_changes(since)

        assert [p.id for p in changes.partners] == ["acme"]
        assert changes.people == []
        assert sorted(g.partner_id for g in changes.grants) == ["acme", "globex", "shield"]
        assert (changes.orders, changes.public) == (None, None)
        assert changes.seq == world.access_clock().seq
        assert world.access_changes(changes.seq).grants == []

    def test_changes_carry_revoked_grants_and_all_active_orders(
        self, world: AccessRegistry
    ) -> None:
        world.grant_for_cohorts(grant_request())
        world.apply_order(order("ec-1"))
        world.apply_order(order("ec-2", scope="everyone", at=T0 + timedelta(hours=2)))
        since = world.access_clock().seq
        world.revoke(revoke_request())
        world.lift_order(lift("ec-1"))

        changes = world.access_changes(since)

        assert {g.status for g in changes.grants} == {"revoked"}
        assert len(changes.grants) == 3
        assert [o.order_id for o in changes.orders or []] == ["ec-2"]

    def test_a_partner_s_grants_stay_oldest_first(self, world: AccessRegistry) -> None:
        """A grant recorded later but dated earlier than one the view holds is consulted first,
        as in a fresh snapshot."""
        world.grant_for_cohorts(
            grant_request(
                key="aurora-3:grant", release="aurora-3", version="3", at=T0 + timedelta(days=1)
            )
        )
        checker = world.checker()
        world.grant_for_cohorts(grant_request())  # release aurora-2, granted at T0

        assert checker.update() is True

        decision = checker.check("aurora", "alice")
        assert decision == AccessChecker(world).check("aurora", "alice")
        [older] = [g for g in world.list_grants("aurora-2") if g.partner_id == "acme"]
        assert decision.grant_id == older.grant_id
        assert decisions(checker) == fresh(world)

    def test_an_unreadable_registry_raises_and_keeps_the_view(
        self, world: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        world.grant_for_cohorts(grant_request())
        checker = world.checker()
        seq = checker.seq
        plain_sql("ALTER TABLE access_clock RENAME TO access_clock_gone")

        with pytest.raises(RegistryError, match="read the access clock"):
            checker.update()

        assert checker.seq == seq
        assert checker.check("aurora", "alice").allowed

    def test_a_source_without_a_feed_is_refreshed(self, world: AccessRegistry) -> None:
        class SnapshotsOnly:
            def __init__(self) -> None:
                self.reads = 0

            def snapshot(self) -> Snapshot:
                self.reads += 1
                return world.snapshot()

        source = SnapshotsOnly()
        checker = AccessChecker(source)
        world.grant_for_cohorts(grant_request())

        assert checker.update() is True
        assert source.reads == 2
        assert checker.check("aurora", "alice").allowed


class TestConcurrentWriters:
    """Writers committing many changes while a reader keeps updating: the reader misses none
    (writers commit in clock order, holding the clock row until they commit)."""

    def test_the_reader_ends_where_a_fresh_snapshot_is(
        self, world: AccessRegistry, plain_sql: Callable[[str], None]
    ) -> None:
        cohort = Cohort(id="all", tiers=list(VettingTier), jurisdictions=["*"])
        world.apply_order(order("ec-0", models=["borealis"], scope="jurisdiction:gb"))
        source = Counting(world)
        checker = AccessChecker(source)
        done = threading.Event()
        errors: list[BaseException] = []
        updates = [0]

        def writer(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for n in range(25):
                    release = f"w{seed}-{n}"
                    model = rng.choice(MODELS)
                    surfaces = rng.sample(list(Surface), 2)
                    world.grant_for_cohorts(
                        grant_request(
                            key=f"{release}:grant",
                            release=release,
                            model=model,
                            version=rng.choice(["1", "2"]),
                            cohorts=[cohort],
                            surfaces=surfaces,
                        )
                    )
                    if rng.random() < 0.4:
                        world.revoke(revoke_request(key=f"{release}:revoke", release=release))
                    world.set_partner_tier(
                        rng.choice(["acme", "globex", "shield", "initech"]),
                        rng.choice(list(VettingTier)),
                    )
                    nationality = rng.choice(list(NationalityStatus)).value
                    person = rng.choice(PEOPLE[:8])
                    plain_sql(
                        f"UPDATE people SET nationality = '{nationality}' WHERE id = '{person}'"
                    )
                    if n % 8 == 0:
                        oid = f"o{seed}-{n}"
                        scope = rng.choice(["foreign_persons", "everyone", "jurisdiction:us"])
                        world.apply_order(order(oid, models=[model], scope=scope))
                        if rng.random() < 0.5:
                            world.lift_order(lift(oid))
            except BaseException as err:  # reported by the test
                errors.append(err)

        def reader() -> None:
            try:
                while not done.is_set():
                    checker.update()
                    decisions(checker)  # checks run against every view the reader swaps in
                    updates[0] += 1
            except BaseException as err:  # reported by the test
                errors.append(err)

        writers = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2, 3)]
        watching = threading.Thread(target=reader)
        watching.start()
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        done.set()
        watching.join()

        assert errors == []
        assert updates[0] > 1 and source.changes > 1  # it applied changes while they came
        checker.update()
        assert checker.seq == world.access_clock().seq
        assert decisions(checker) == fresh(world)
        assert source.snapshots == 1


class TestWritersTakeTheClockFirst:
    """A writer takes the clock before it locks any row of the access tables, so two writers
    touching one grant in either order both commit, one after the other (on PostgreSQL a row
    trigger alone took the clock with the row already locked: the two deadlocked)."""

    def test_a_clock_holder_and_a_writer_of_its_grant_both_commit(
        self, world: AccessRegistry, empty_url: str
    ) -> None:
        grant = world.grant_for_cohorts(grant_request()).grants[0].grant_id
        checker = world.checker()
        engine = create_registry_engine(empty_url)
        errors: list[BaseException] = []

        def second() -> None:
            try:
                with _writing(engine) as connection:
                    connection.exec_driver_sql(
                        f"UPDATE grants SET status = 'revoked' WHERE grant_id = '{grant}'"
                    )
            except BaseException as err:  # reported by the test
                errors.append(err)

        other = threading.Thread(target=second)
        try:
            with _writing(engine) as connection:
                connection.exec_driver_sql(
                    "UPDATE partners SET tier = 'invite_only' WHERE id = 'globex'"
                )  # holds the clock from here to its commit
                other.start()
                other.join(timeout=0.5)
                assert other.is_alive()  # it cannot write before this transaction commits
                connection.exec_driver_sql(
                    f"UPDATE grants SET status = 'suspended' WHERE grant_id = '{grant}'"
                )
            other.join()
        finally:
            engine.dispose()

        assert errors == []
        assert {g.grant_id: g.status for g in world.list_grants("aurora-2")}[grant] == "revoked"
        assert checker.update() is True
        assert decisions(checker) == fresh(world)


@contextmanager
def _writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction (on SQLite taking the write lock at BEGIN, as the registry does)."""
    with (
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        yield connection


class TestMigration:
    """Rows written before the change feed existed keep ``change_seq`` 0, the clock starts at
    0, and the first write after the upgrade moves it."""

    def test_an_upgraded_registry_keeps_its_rows_and_follows_from_zero(
        self, empty_url: str
    ) -> None:
        engine = create_registry_engine(empty_url)
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0008")
            connection.exec_driver_sql(
                "INSERT INTO partners (id, name, tier, jurisdiction, created_at) "
                "VALUES ('acme', 'Acme', 'enterprise_kyc', 'us', '2026-07-01 12:00:00')"
            )
        upgrade(engine)
        with engine.connect() as connection:
            stamp = connection.exec_driver_sql("SELECT change_seq FROM partners").scalar()
        engine.dispose()
        assert stamp == 0

        with AccessRegistry(empty_url) as registry:
            assert registry.access_clock() == AccessClock(seq=0, epoch=0)
            checker = registry.checker()
            assert checker.seq == 0
            registry.add_person(
                RegisteredPerson(
                    id="alice",
                    partner_id="acme",
                    nationality=NationalityStatus.US_PERSON,
                    location="us",
                )
            )
            assert registry.access_clock().seq > 0
            assert checker.update() is True
            assert checker.check("aurora", "alice") == registry.checker().check("aurora", "alice")
            assert checker.check("aurora", "alice").rule.value == "no_grant"

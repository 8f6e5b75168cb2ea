"""The service follows the registry: a change made through :class:`AccessRegistry` is answered
within a bound; a view it cannot confirm current within ``staleness`` denies everything (fail
closed, saying why), /readyz turns 503, and both recover once the registry reads again."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gatekeeper.adapters.registry import AccessRegistry, RegisteredPerson
from gatekeeper.models.enums import NationalityStatus
from tests.access_service.conftest import build_world
from tests.access_service.service import edge_lines, gateway, running, service_settings
from tests.databases import PostgresServer
from tests.registry.builders import T0, lift, order, revoke_request

#: A change must be answered within this (the service polls every 0.1 s; the bound is loose
#: on purpose: a busy machine must not fail the test, a service that never follows must).
BOUND = 5.0


def until(
    ask: Callable[[], httpx.Response], wanted: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Ask until the answer is the one wanted; fail past :data:`BOUND` seconds."""
    deadline = time.monotonic() + BOUND
    while True:
        answer = ask()
        if wanted(answer):
            return answer
        assert time.monotonic() < deadline, (
            f"still {answer.status_code} {answer.text} after {BOUND} s"
        )
        time.sleep(0.02)


def rule_is(rule: str) -> Callable[[httpx.Response], bool]:
    return lambda answer: answer.json().get("rule") == rule


class TestFollowsChanges:
    """Orders applied and lifted, grants revoked and people added are answered within a bound,
    and the view's sequence number moves with them; the service reads only what changed (no
    snapshot after the first)."""

    def test_order_lift_revoke_person(self, world_url: str, tmp_path: Path) -> None:
        settings = service_settings(world_url, tmp_path)
        with (
            running(settings) as handle,
            gateway(handle) as gw,
            AccessRegistry(world_url) as registry,
        ):
            first = gw.ask("alice")
            assert first.status_code == 200
            seq_before = first.json()["view_seq"]
            assert gw.ask("newcomer").json()["rule"] == "unknown_person"

            registry.apply_order(order("ec-all", scope="everyone", at=T0 + timedelta(hours=2)))
            denied = until(lambda: gw.ask("alice"), rule_is("order"))
            assert denied.status_code == 403
            assert denied.json()["order_id"] == "ec-all"
            assert denied.headers["x-gatekeeper-order"] == "ec-all"

            registry.lift_order(lift("ec-all"))
            assert until(lambda: gw.ask("alice"), rule_is("grant")).status_code == 200

            registry.add_person(
                RegisteredPerson(
                    id="newcomer", partner_id="acme", nationality=NationalityStatus.US_PERSON,
                    location="us",
                )
            )  # fmt: skip
            assert until(lambda: gw.ask("newcomer"), rule_is("grant")).status_code == 200

            registry.revoke(revoke_request())
            revoked = until(lambda: gw.ask("alice"), rule_is("revoked"))
            assert revoked.status_code == 403
            assert revoked.json()["view_seq"] > seq_before
            # Followed through the change feed: the one full snapshot is the first.
            assert handle.service.registry.snapshots == 1
        assert [line["rule"] for line in edge_lines(settings)][-1] == "revoked"


@pytest.fixture
def pg_world(postgres: PostgresServer) -> Iterator[tuple[str, PostgresServer]]:
    url = postgres.create_database()
    try:
        with AccessRegistry(url) as registry:
            build_world(registry)
        yield url, postgres
    finally:
        postgres.drop_database(url)


def _connections(postgres: PostgresServer, url: str, *, allowed: bool) -> None:
    """Let connections to ``url``'s database in, or shut them out (and end those open)."""
    name = sa.make_url(url).database
    with postgres.admin.connect() as connection:
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if allowed else "false"}'
        )
        if not allowed:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )


class TestFailClosed:
    """With its PostgreSQL database shut off, the service denies every request past the
    staleness bound with rule fail_closed, a reason naming the view's age, the bound and the
    error, logs each deny, and /readyz answers 503; once the database is back it answers from the
    registry again."""

    REASON = re.compile(
        r"^access view not confirmed current for \d+\.\d s \(bound 0\.5 s\): "
        r".*database unavailable"
    )

    def test_registry_unreadable_then_back(
        self, pg_world: tuple[str, PostgresServer], tmp_path: Path
    ) -> None:
        url, postgres = pg_world
        settings = service_settings(url, tmp_path, staleness=0.5, poll=0.1)
        with running(settings) as handle, gateway(handle) as gw:
            assert gw.ask("alice").status_code == 200
            assert gw.client.get("/readyz").status_code == 200
            _connections(postgres, url, allowed=False)
            try:
                closed = until(lambda: gw.ask("alice"), rule_is("fail_closed"))
                body = closed.json()
                assert closed.status_code == 403
                assert self.REASON.match(body["reason"]), body["reason"]
                assert "\n" not in body["reason"]
                assert body["view_age_ms"] >= 500
                assert (body["decision"], body["order_id"], body["grant_id"]) == (
                    "deny",
                    None,
                    None,
                )
                assert closed.headers["x-gatekeeper-rule"] == "fail_closed"
                # Every request, allowed a moment ago or not, is denied.
                for person in ("sam", "walker"):
                    assert (
                        gw.ask(person, "nova" if person == "walker" else "aurora").json()["rule"]
                        == "fail_closed"
                    )
                ready = gw.client.get("/readyz")
                assert ready.status_code == 503
                assert "database" not in ready.text  # no registry detail without a token
            finally:
                _connections(postgres, url, allowed=True)
            back = until(lambda: gw.ask("alice"), rule_is("grant"))
            assert back.status_code == 200
            assert back.json()["view_age_ms"] < 500
            assert gw.client.get("/readyz").status_code == 200
        closed_lines = [line for line in edge_lines(settings) if line["rule"] == "fail_closed"]
        assert closed_lines and all(line["decision"] == "deny" for line in closed_lines)
        assert self.REASON.match(closed_lines[0]["reason"])


class TestAnswersFromMemory:
    """Checks never wait for the database: with it shut off, the service goes on answering
    from its view until the staleness bound, while the poll thread fails in the background."""

    def test_database_down_within_the_bound(
        self, pg_world: tuple[str, PostgresServer], tmp_path: Path
    ) -> None:
        url, postgres = pg_world
        settings = service_settings(url, tmp_path, staleness=60.0, poll=0.1)
        with running(settings) as handle, gateway(handle) as gw:
            assert gw.ask("alice").status_code == 200
            _connections(postgres, url, allowed=False)
            try:
                failures = handle.service.view.failures
                deadline = time.monotonic() + BOUND
                while handle.service.view.failures < failures + 3:
                    assert time.monotonic() < deadline, "the poll thread did not notice"
                    time.sleep(0.05)
                for person, rule in (("alice", "grant"), ("bruno", "order"), ("sam", "grant")):
                    assert gw.ask(person).json()["rule"] == rule
                assert gw.client.get("/readyz").status_code == 200
                assert handle.service.view.last_error is not None
                assert "database unavailable" in handle.service.view.last_error
            finally:
                _connections(postgres, url, allowed=True)


class TestFailClosedSqlite:
    """On SQLite too: with the registry's access clock unreadable (its table renamed under the
    service), decisions fail closed past the bound and come back once it is readable."""

    def test_clock_unreadable_then_back(self, world_url: str, tmp_path: Path) -> None:
        settings = service_settings(world_url, tmp_path, staleness=0.5, poll=0.1)
        engine = sa.create_engine(world_url)
        try:
            with running(settings) as handle, gateway(handle) as gw:
                assert gw.ask("alice").status_code == 200
                with engine.begin() as connection:
                    connection.exec_driver_sql("ALTER TABLE access_clock RENAME TO clock_away")
                try:
                    closed = until(lambda: gw.ask("alice"), rule_is("fail_closed"))
                    reason = closed.json()["reason"]
                    assert re.match(
                        r"^access view not confirmed current for \d+\.\d s \(bound 0\.5 s\): ",
                        reason,
                    ), reason
                    assert "access_clock" in reason
                    assert gw.client.get("/readyz").status_code == 503
                finally:
                    with engine.begin() as connection:
                        connection.exec_driver_sql("ALTER TABLE clock_away RENAME TO access_clock")
                assert until(lambda: gw.ask("alice"), rule_is("grant")).status_code == 200
                assert gw.client.get("/readyz").status_code == 200
        finally:
            engine.dispose()

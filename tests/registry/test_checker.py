"""The decision order, and the in-memory checker agreeing with the database on random worlds."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.access import (
    AccessChecker,
    AccessRule,
    GrantFacts,
    OrderFacts,
    PartnerFacts,
    PersonFacts,
    PublicFacts,
    Snapshot,
    check_access,
)
from gatekeeper.adapters.registry import AccessRegistry, Partner, RegisteredPerson
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.policy import Cohort
from tests.databases import PostgresServer
from tests.registry.builders import T0, grant_request, lift, order, revoke_request
from tests.registry.conftest import sqlite_url

US, FOREIGN, UNKNOWN = (
    NationalityStatus.US_PERSON,
    NationalityStatus.FOREIGN_PERSON,
    NationalityStatus.UNKNOWN,
)
KYC = VettingTier.ENTERPRISE_KYC
ACME = PartnerFacts(id="acme", tier=KYC, jurisdiction="us")
ALICE = PersonFacts(id="alice", partner_id="acme", nationality=US, location="us")
GRANT = GrantFacts(
    grant_id="g-1",
    partner_id="acme",
    model="aurora",
    variant="2",
    surface=Surface.API,
    status="active",
    tiers=frozenset({KYC}),
)


def decide(
    person: PersonFacts | None = ALICE,
    partner: PartnerFacts | None = ACME,
    orders: tuple[OrderFacts, ...] = (),
    grants: tuple[GrantFacts, ...] = (GRANT,),
    variant: str | None = None,
) -> tuple[bool, AccessRule]:
    decision = check_access(
        person_id="alice",
        model="aurora",
        surface=Surface.API,
        person=person,
        partner=partner,
        orders=orders,
        grants=grants,
        variant=variant,
    )
    return decision.allowed, decision.rule


def an_order(scope: str, *, models: tuple[str, ...] = ("aurora",), exempt: str = "") -> OrderFacts:
    return OrderFacts(
        order_id=f"o-{scope}",
        models=frozenset(models),
        scope=scope,
        exempt_partners=frozenset({exempt} - {""}),
    )


class TestDecisionOrder:
    """unknown person, then orders, then public, membership, then grant, tier, suspension,
    revocation, no grant; an allow an exemption from an order made possible says so."""

    def test_an_active_grant_allows(self) -> None:
        assert decide() == (True, AccessRule.GRANT)

    def test_an_unknown_person_is_denied_before_anything_else(self) -> None:
        assert decide(person=None, orders=(an_order("everyone"),)) == (
            False,
            AccessRule.UNKNOWN_PERSON,
        )

    def test_an_order_beats_a_grant(self) -> None:
        assert decide(orders=(an_order("everyone"),)) == (False, AccessRule.ORDER)

    def test_an_order_for_another_model_is_ignored(self) -> None:
        assert decide(orders=(an_order("everyone", models=("nova",)),)) == (True, AccessRule.GRANT)

    def test_an_order_for_all_models_applies(self) -> None:
        assert decide(orders=(an_order("everyone", models=("*",)),)) == (False, AccessRule.ORDER)

    def test_exempt_partners_skip_the_order_and_the_allow_says_so(self) -> None:
        assert decide(orders=(an_order("everyone", exempt="acme"),)) == (
            True,
            AccessRule.EXEMPTION,
        )

    def test_an_exemption_names_the_order_and_the_grant(self) -> None:
        decision = check_access(
            person_id="alice",
            model="aurora",
            surface="api",
            person=ALICE,
            partner=ACME,
            orders=(an_order("foreign_persons"), an_order("everyone", exempt="acme")),
            grants=(GRANT,),
        )

        assert (decision.allowed, decision.rule) == (True, AccessRule.EXEMPTION)
        assert (decision.order_id, decision.grant_id) == ("o-everyone", "g-1")
        assert decision.reason == (
            "order o-everyone covers everyone, but acme is exempt; grant g-1 to acme for aurora 2"
        )

    def test_an_exemption_from_an_order_that_would_not_cover_the_person_is_no_exemption(
        self,
    ) -> None:
        """A US person of an exempt partner is allowed by the grant: the order never covered
        them."""
        assert decide(orders=(an_order("foreign_persons", exempt="acme"),)) == (
            True,
            AccessRule.GRANT,
        )

    def test_an_exemption_does_not_beat_another_order(self) -> None:
        orders = (an_order("everyone", exempt="acme"), an_order("jurisdiction:us"))

        assert decide(orders=orders) == (False, AccessRule.ORDER)

    def test_an_exemption_spares_a_public_launch_too(self) -> None:
        launch = PublicFacts(model="aurora", variant="2", surface=Surface.API, release_id="r1")
        decision = check_access(
            person_id="alice",
            model="aurora",
            surface="api",
            person=PersonFacts(id="alice", partner_id="acme", nationality=UNKNOWN, location="us"),
            partner=ACME,
            orders=(an_order("foreign_persons", exempt="acme"),),
            grants=(),
            public=(launch,),
        )

        assert (decision.rule, decision.order_id, decision.grant_id) == (
            AccessRule.EXEMPTION,
            "o-foreign_persons",
            None,
        )
        assert "is public on api" in decision.reason

    def test_an_exemption_does_not_allow_what_nothing_grants(self) -> None:
        assert decide(orders=(an_order("everyone", exempt="acme"),), grants=()) == (
            False,
            AccessRule.NO_GRANT,
        )

    @pytest.mark.parametrize(
        ("nationality", "expected"),
        [
            (US, (True, AccessRule.GRANT)),
            (FOREIGN, (False, AccessRule.ORDER)),
            (UNKNOWN, (False, AccessRule.FAIL_CLOSED)),
        ],
    )
    def test_a_nationality_scope_treats_unknown_as_foreign(
        self, nationality: NationalityStatus, expected: tuple[bool, AccessRule]
    ) -> None:
        person = PersonFacts(id="alice", partner_id="acme", nationality=nationality, location="us")

        assert decide(person=person, orders=(an_order("foreign_persons"),)) == expected

    @pytest.mark.parametrize(
        ("location", "partner_jurisdiction", "expected"),
        [
            ("us", "us", (True, AccessRule.GRANT)),
            ("cn", "us", (False, AccessRule.ORDER)),
            ("us", "cn", (False, AccessRule.ORDER)),
            (None, "us", (False, AccessRule.FAIL_CLOSED)),
        ],
    )
    def test_a_jurisdiction_scope_covers_location_or_partner_base(
        self, location: str | None, partner_jurisdiction: str, expected: tuple[bool, AccessRule]
    ) -> None:
        person = PersonFacts(id="alice", partner_id="acme", nationality=US, location=location)
        partner = PartnerFacts(id="acme", tier=KYC, jurisdiction=partner_jurisdiction)

        assert decide(person, partner, orders=(an_order("jurisdiction:cn"),)) == expected

    def test_an_unrecognised_scope_fails_closed(self) -> None:
        assert decide(orders=(an_order("martians"),)) == (False, AccessRule.FAIL_CLOSED)

    def test_the_first_covering_order_is_reported(self) -> None:
        first, second = an_order("foreign_persons"), an_order("everyone")
        foreign = PersonFacts(id="alice", partner_id="acme", nationality=FOREIGN, location="us")

        decision = check_access(
            person_id="alice",
            model="aurora",
            surface="api",
            person=foreign,
            partner=ACME,
            orders=(first, second),
            grants=(GRANT,),
        )

        assert decision.order_id == "o-foreign_persons"

    def test_a_person_without_a_partner_has_no_grant(self) -> None:
        loner = PersonFacts(id="alice", partner_id=None, nationality=US, location="us")

        assert decide(person=loner, partner=None) == (False, AccessRule.NO_GRANT)

    def test_a_tier_the_grant_does_not_admit_is_denied(self) -> None:
        downgraded = PartnerFacts(id="acme", tier=VettingTier.IDENTITY_VERIFIED, jurisdiction="us")

        assert decide(partner=downgraded) == (False, AccessRule.TIER)

    def test_a_suspended_grant_is_denied_naming_its_order(self) -> None:
        suspended = GrantFacts(
            grant_id="g-1",
            partner_id="acme",
            model="aurora",
            variant="2",
            surface=Surface.API,
            status="suspended",
            tiers=frozenset({KYC}),
            order_id="ec-1",
        )
        decision = check_access(
            person_id="alice",
            model="aurora",
            surface="api",
            person=ALICE,
            partner=ACME,
            orders=(),
            grants=(suspended,),
        )

        assert (decision.allowed, decision.rule, decision.order_id) == (
            False,
            AccessRule.SUSPENDED,
            "ec-1",
        )

    def test_only_revoked_grants_are_denied_as_revoked(self) -> None:
        revoked = replace(GRANT, grant_id="g-0", status="revoked", order_id="ec-9")
        decision = check_access(
            person_id="alice",
            model="aurora",
            surface="api",
            person=ALICE,
            partner=ACME,
            orders=(),
            grants=(revoked,),
        )

        assert (decision.allowed, decision.rule) == (False, AccessRule.REVOKED)
        assert (decision.grant_id, decision.order_id) == ("g-0", "ec-9")
        assert decision.reason == "grant g-0 to acme for aurora 2 on api was revoked (order ec-9)"
        assert decide(grants=(revoked, GRANT)) == (True, AccessRule.GRANT)
        assert decide(grants=(revoked, replace(GRANT, status="suspended"))) == (
            False,
            AccessRule.SUSPENDED,
        )
        downgraded = PartnerFacts(id="acme", tier=VettingTier.IDENTITY_VERIFIED, jurisdiction="us")
        assert decide(partner=downgraded, grants=(revoked, GRANT)) == (False, AccessRule.TIER)
        assert decide(grants=(revoked,), variant="3") == (False, AccessRule.NO_GRANT)
        assert decide(grants=(replace(revoked, surface=Surface.APP),)) == (
            False,
            AccessRule.NO_GRANT,
        )

    def test_variant_surface_and_other_partners_grants_must_match(self) -> None:
        assert decide(variant="2") == (True, AccessRule.GRANT)
        assert decide(variant="3") == (False, AccessRule.NO_GRANT)
        app_only = replace(GRANT, surface=Surface.APP)
        assert decide(grants=(app_only,)) == (False, AccessRule.NO_GRANT)
        other = replace(GRANT, partner_id="globex")
        assert decide(grants=(other,)) == (False, AccessRule.NO_GRANT)

    def test_the_line_says_allow_or_deny_with_the_rule(self) -> None:
        decision = check_access(
            person_id="ghost",
            model="aurora",
            surface="api",
            person=None,
            partner=None,
            orders=(),
            grants=(),
        )
        assert decision.line() == "deny (unknown_person): no person 'ghost'"


class _Counting:
    """A snapshot source that counts reads."""

    def __init__(self) -> None:
        self.reads = 0

    def snapshot(self) -> Snapshot:
        self.reads += 1
        return Snapshot(people={}, partners={}, orders=[], grants=[])


class TestChecker:
    """The checker answers from its snapshot until refreshed (or until it is too old)."""

    def test_refresh_picks_up_changes(self, world: AccessRegistry) -> None:
        checker = world.checker()
        assert checker.check("aurora", "alice").rule is AccessRule.NO_GRANT

        world.grant_for_cohorts(grant_request())
        assert checker.check("aurora", "alice").rule is AccessRule.NO_GRANT
        checker.refresh()

        assert checker.check("aurora", "alice").allowed
        assert checker.check("aurora", "alice", "api", variant="2").allowed
        assert checker.check("aurora", "alice", Surface.APP).rule is AccessRule.NO_GRANT

    def test_orders_for_all_models_also_cover_models_other_orders_name(
        self, world: AccessRegistry
    ) -> None:
        world.grant_for_cohorts(grant_request())
        world.apply_order(order("named", scope="foreign_persons"))
        world.apply_order(order("all", models=["*"], scope="everyone", at=T0 + timedelta(hours=2)))

        decision = world.checker().check("aurora", "alice")

        assert (decision.rule, decision.order_id) == (AccessRule.ORDER, "all")

    def test_a_stale_snapshot_is_refreshed_when_max_age_is_set(self) -> None:
        source = _Counting()
        checker = AccessChecker(source, max_age=60)
        now = [checker.taken_at]
        checker._clock = lambda: now[0]

        checker.check("m", "p")
        assert source.reads == 1
        now[0] += 61
        checker.check("m", "p")

        assert source.reads == 2

    def test_without_max_age_it_never_reads_on_its_own(self) -> None:
        source = _Counting()
        checker = AccessChecker(source)
        checker._clock = lambda: checker.taken_at + 10**6

        checker.check("m", "p")

        assert source.reads == 1


JURISDICTIONS = ["us", "gb", "jp"]
MODELS = ["m1", "m2"]


@pytest.fixture(scope="module")
def postgres_template(postgres: PostgresServer) -> Iterator[str]:
    """An empty registry at head on PostgreSQL, the template of each generated world."""
    url = postgres.create_database()
    AccessRegistry(url).close()
    try:
        yield url
    finally:
        postgres.drop_database(url)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty registry at head, copied for each generated world (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "registry.db"
    AccessRegistry(sqlite_url(path)).close()
    return path


def _build_world(registry: AccessRegistry, data: st.DataObject) -> list[str]:
    partner_ids = [f"p{i}" for i in range(data.draw(st.integers(1, 4), label="partners"))]
    for pid in partner_ids:
        registry.add_partner(
            Partner(
                id=pid,
                tier=data.draw(st.sampled_from(VettingTier)),
                jurisdiction=data.draw(st.sampled_from(JURISDICTIONS)),
            )
        )
    person_ids = [f"u{i}" for i in range(data.draw(st.integers(1, 6), label="people"))]
    for uid in person_ids:
        registry.add_person(
            RegisteredPerson(
                id=uid,
                partner_id=data.draw(st.sampled_from([*partner_ids, None])),
                nationality=data.draw(st.sampled_from(NationalityStatus)),
                location=data.draw(st.sampled_from([*JURISDICTIONS, None])),
            )
        )
    subsets = st.lists(st.sampled_from(JURISDICTIONS), min_size=1, unique=True)
    for n in range(data.draw(st.integers(1, 3), label="grant requests")):
        cohorts = [
            Cohort(
                id=f"c{c}",
                tiers=data.draw(st.lists(st.sampled_from(VettingTier), min_size=1, unique=True)),
                jurisdictions=data.draw(subsets),
            )
            for c in range(data.draw(st.integers(1, 2)))
        ]
        release = f"r{n}"
        result = registry.grant_for_cohorts(
            grant_request(
                key=f"{release}:grant",
                release=release,
                model=data.draw(st.sampled_from(MODELS)),
                version=data.draw(st.sampled_from(["1", "2"])),
                cohorts=cohorts,
                regions=data.draw(subsets),
                surfaces=data.draw(st.lists(st.sampled_from(Surface), min_size=1, unique=True)),
            )
        )
        ids = [g.grant_id for g in result.grants]
        revoke_some: bool = data.draw(st.booleans(), label="revoke some")
        if ids and revoke_some:
            picked = data.draw(st.lists(st.sampled_from(ids), unique=True))
            registry.revoke(
                revoke_request(key=f"{release}:revoke", release=release, grant_ids=picked)
            )
    for pid in data.draw(st.lists(st.sampled_from(partner_ids), unique=True), label="re-vetted"):
        registry.set_partner_tier(pid, data.draw(st.sampled_from(VettingTier)))
    scopes = st.sampled_from(
        ["foreign_persons", "everyone", *(f"jurisdiction:{j}" for j in JURISDICTIONS)]
    )
    for n in range(data.draw(st.integers(0, 4), label="orders")):
        registry.apply_order(
            order(
                f"o{n}",
                models=data.draw(st.sampled_from([["m1"], ["m2"], ["*"], ["m1", "m2"]])),
                scope=data.draw(scopes),
                exempt=data.draw(st.lists(st.sampled_from(partner_ids), unique=True)),
                at=T0 + timedelta(hours=n),
            )
        )
        if data.draw(st.booleans(), label="lift"):
            registry.lift_order(lift(f"o{n}"))
    return person_ids


class TestAgreement:
    """On any world, the in-memory checker answers exactly what the database-backed check does."""

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test_checker_agrees_with_the_database(self, template: Path, data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "registry.db"
            shutil.copyfile(template, path)
            with AccessRegistry(sqlite_url(path)) as registry:
                _agree(registry, data)

    @settings(
        # Each world costs a second or two on PostgreSQL (a database copied from the template,
        # then every check a query): a few worlds here, the many on SQLite above.
        max_examples=4,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test_checker_agrees_with_postgresql(
        self, postgres: PostgresServer, postgres_template: str, data: st.DataObject
    ) -> None:
        """The same on PostgreSQL: the database-backed check's queries agree there too."""
        url = postgres.admin.url.set(database=f"gk_{uuid.uuid4().hex[:16]}")
        template = sa.make_url(postgres_template).database
        with postgres.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{url.database}" TEMPLATE "{template}"')
        rendered = url.render_as_string(hide_password=False)
        try:
            with AccessRegistry(rendered) as registry:
                _agree(registry, data)
        finally:
            postgres.drop_database(rendered)


def _agree(registry: AccessRegistry, data: st.DataObject) -> None:
    person_ids = _build_world(registry, data)
    checker = registry.checker()
    for person in [*person_ids, "ghost"]:
        for model in [*MODELS, "m3"]:
            for surface in Surface:
                for variant in (None, "1"):
                    expected = registry.check_access(model, person, surface, variant)
                    actual = checker.check(model, person, surface, variant)
                    assert actual == expected, (model, person, surface, variant)

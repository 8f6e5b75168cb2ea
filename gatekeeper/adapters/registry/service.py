"""The access registry: partners, people, grants and access orders in one SQL database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gatekeeper.access import (
    AccessChanges,
    AccessChecker,
    AccessClock,
    AccessDecision,
    Snapshot,
    check_access,
)
from gatekeeper.adapters.registry import granting, ordering, records
from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import (
    SQLITE_BUSY_TIMEOUT,
)
from gatekeeper.adapters.registry.models import Partner, PublicLaunch, RegisteredPerson
from gatekeeper.adapters.registry.tables import (
    access_clock,
    access_orders,
    grants,
    partners,
    people,
    public_launches,
)
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import Surface, VettingTier
from gatekeeper.models.io import GrantRequest, GrantResult, RevokeRequest, RevokeResult
from gatekeeper.models.orders import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    ExemptOrderRequest,
    ExemptOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
)
from gatekeeper.models.partners import EligiblePartners, EligiblePartnersRequest
from gatekeeper.models.status import GrantRecord

_PERSON_FACT_COLUMNS = (people.c.id, people.c.partner_id, people.c.nationality, people.c.location)
_PARTNER_FACT_COLUMNS = (partners.c.id, partners.c.tier, partners.c.jurisdiction)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AccessRegistry(Database):
    """Partners, people, grants and orders, behind one SQLAlchemy URL. No Temporal imports.

    Opening upgrades the schema to the newest migration, so a fresh data directory just works.
    Every method is synchronous and thread-safe (one engine, pooled connections). Database errors
    surface as :class:`~gatekeeper.errors.RegistryError`; refusals (duplicates, unknown ids,
    reused idempotency keys) are ``RegistryError(retryable=False)``.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////abs/.gatekeeper/registry.db`` or
            ``postgresql+psycopg://user@host/gatekeeper``.
        clock: the time recorded for partners and people (orders and grants carry their own).
        busy_timeout: seconds a SQLite writer waits for another writer's lock; past it the
            operation fails with a retryable ``RegistryError``.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock

    # -- lifecycle -------------------------------------------------------------------------

    # -- partners and people ---------------------------------------------------------------

    def add_partner(self, partner: Partner) -> Partner:
        """Register a partner organisation; its name defaults to its id.

        Raises:
            RegistryError: (not retryable) a partner with that id exists.
        """
        partner = partner.model_copy(update={"name": partner.name or partner.id})
        with self._write(f"add partner {partner.id}") as connection:
            if _exists(connection, partners.c.id, partner.id):
                raise RegistryError(f"partner {partner.id} already exists", retryable=False)
            connection.execute(
                sa.insert(partners).values(
                    **partner.model_dump(mode="json"), created_at=self._clock()
                )
            )
        return partner

    def set_partner_tier(self, partner_id: str, tier: VettingTier) -> Partner:
        """Record a new vetting tier (after re-vetting); grants whose cohort no longer admits
        the tier stop allowing access at once."""
        with self._write(f"set tier of partner {partner_id}") as connection:
            self._need(connection, partners.c.id, partner_id, "partner")
            connection.execute(
                sa.update(partners).where(partners.c.id == partner_id).values(tier=tier.value)
            )
            row = connection.execute(sa.select(partners).where(partners.c.id == partner_id)).one()
        return records.partner_model(row)

    def list_partners(self, tier: VettingTier | None = None) -> list[Partner]:
        query = sa.select(partners).order_by(partners.c.id)
        if tier is not None:
            query = query.where(partners.c.tier == tier.value)
        with self._read("list partners") as connection:
            return [records.partner_model(row) for row in connection.execute(query)]

    def add_person(self, person: RegisteredPerson) -> RegisteredPerson:
        """Register a person, optionally as staff of a partner.

        Raises:
            RegistryError: (not retryable) the person exists, or the partner does not.
        """
        with self._write(f"add person {person.id}") as connection:
            if _exists(connection, people.c.id, person.id):
                raise RegistryError(f"person {person.id} already exists", retryable=False)
            if person.partner_id is not None:
                self._need(connection, partners.c.id, person.partner_id, "partner")
            connection.execute(
                sa.insert(people).values(**person.model_dump(mode="json"), created_at=self._clock())
            )
        return person

    def list_people(self, partner_id: str | None = None) -> list[RegisteredPerson]:
        query = sa.select(people).order_by(people.c.id)
        with self._read("list people") as connection:
            if partner_id is not None:
                self._need(connection, partners.c.id, partner_id, "partner")
                query = query.where(people.c.partner_id == partner_id)
            return [records.person_model(row) for row in connection.execute(query)]

    # -- grants and orders -----------------------------------------------------------------

    def grant_for_cohorts(self, request: GrantRequest) -> GrantResult:
        """Grant matching partners access for a release (see ``granting``). Idempotent by key."""
        with self._write(f"grant access for release {request.release_id}") as connection:
            return granting.grant_for_cohorts(connection, request)

    def eligible_partners(self, request: EligiblePartnersRequest) -> EligiblePartners:
        """The partners a grant for ``request``'s cohorts would reach; grants nothing."""
        with self._read(f"list partners eligible for release {request.release_id}") as connection:
            return granting.eligible_partners(connection, request)

    def revoke(self, request: RevokeRequest) -> RevokeResult:
        """Revoke a release's grants (all unrevoked ones if none are named). Idempotent by key."""
        with self._write(f"revoke access for release {request.release_id}") as connection:
            return granting.revoke(connection, request)

    def list_grants(self, release_id: str) -> list[GrantRecord]:
        """Every grant of a release, revoked ones included, oldest first."""
        query = (
            sa.select(*records.GRANT_RECORD_COLUMNS)
            .join(partners, partners.c.id == grants.c.partner_id)
            .where(grants.c.release_id == release_id)
            .order_by(grants.c.granted_at, grants.c.partner_id, grants.c.surface)
        )
        with self._read(f"list grants of release {release_id}") as connection:
            return [records.grant_record(row) for row in connection.execute(query)]

    def releases_holding_grants(self) -> list[str]:
        """Releases with at least one grant not revoked (active or suspended), sorted."""
        query = (
            sa.select(grants.c.release_id)
            .where(grants.c.status != "revoked")
            .distinct()
            .order_by(grants.c.release_id)
        )
        with self._read("list releases holding grants") as connection:
            return [row.release_id for row in connection.execute(query)]

    def apply_order(self, request: ApplyOrderRequest) -> ApplyOrderResult:
        """Record an access order and suspend what it covers (see ``ordering``)."""
        with self._write(f"apply access order {request.order_id}") as connection:
            return ordering.apply_order(connection, request)

    def exempt_order(self, request: ExemptOrderRequest) -> ExemptOrderResult:
        """Exempt partners from an active order (see ``ordering``)."""
        with self._write(f"exempt partners from access order {request.order_id}") as connection:
            return ordering.exempt_order(connection, request)

    def lift_order(self, request: LiftOrderRequest) -> LiftOrderResult:
        """Lift an access order and restore what it suspended (see ``ordering``)."""
        with self._write(f"lift access order {request.order_id}") as connection:
            return ordering.lift_order(connection, request)

    def list_orders(self, *, active_only: bool = False) -> list[AccessOrder]:
        query = sa.select(access_orders).order_by(
            access_orders.c.issued_at, access_orders.c.order_id
        )
        if active_only:
            query = query.where(access_orders.c.status == "active")
        with self._read("list access orders") as connection:
            return [records.order_model(row) for row in connection.execute(query)]

    def orders_for_model(self, model: str, recheck: list[str] | None = None) -> list[AccessOrder]:
        """The active orders naming ``model`` (or every model), and the orders ``recheck``
        names whatever their state, in issue order."""
        wanted = set(recheck or [])
        return [
            order
            for order in self.list_orders()
            if order.order_id in wanted or (order.status == "active" and order.names(model))
        ]

    def get_order(self, order_id: str) -> AccessOrder:
        """One access order, lifted or not.

        Raises:
            RegistryError: (not retryable) there is no such order.
        """
        query = sa.select(access_orders).where(access_orders.c.order_id == order_id)
        with self._read(f"read access order {order_id}") as connection:
            row = connection.execute(query).first()
        if row is None:
            raise RegistryError(f"no access order {order_id}", retryable=False)
        return records.order_model(row)

    # -- public launches -------------------------------------------------------------------

    def record_public_launch(self, launch: PublicLaunch) -> PublicLaunch:
        """Record that a launch published a model on a surface; a repeat returns the first record.

        From then on a check allows anyone the registry knows on that surface, unless an order
        denies them.
        """
        key = (public_launches.c.release_id == launch.release_id) & (
            public_launches.c.surface == launch.surface.value
        )
        with self._write(f"record the public launch of release {launch.release_id}") as connection:
            row = connection.execute(sa.select(public_launches).where(key)).first()
            if row is not None:
                return records.public_model(row)
            connection.execute(
                sa.insert(public_launches).values(**launch.model_dump(mode="python"))
            )
        return launch

    def list_public_launches(self, model: str | None = None) -> list[PublicLaunch]:
        query = sa.select(public_launches).order_by(
            public_launches.c.published_at, public_launches.c.release_id, public_launches.c.surface
        )
        if model is not None:
            query = query.where(public_launches.c.model_name == model)
        with self._read("list public launches") as connection:
            return [records.public_model(row) for row in connection.execute(query)]

    # -- checks ----------------------------------------------------------------------------

    def check_access(
        self,
        model: str,
        person: str,
        surface: Surface | str = Surface.API,
        variant: str | None = None,
    ) -> AccessDecision:
        """Decide one check straight from the database (the CLI's path; serving stacks should
        use :meth:`checker`)."""
        with self._read("check access") as connection:
            person_row = connection.execute(sa.select(people).where(people.c.id == person)).first()
            facts = None if person_row is None else records.person_facts(person_row)
            partner = None
            grant_rows: list[records.AnyRow] = []
            if facts is not None and facts.partner_id is not None:
                partner_row = connection.execute(
                    sa.select(partners).where(partners.c.id == facts.partner_id)
                ).one()
                partner = records.partner_facts(partner_row)
                grant_rows = list(
                    connection.execute(
                        sa.select(*records.GRANT_FACT_COLUMNS)
                        .where(
                            grants.c.partner_id == facts.partner_id,
                            grants.c.model_name == model,
                            grants.c.surface == str(surface),
                        )
                        .order_by(*records.GRANT_FACT_ORDER)
                    )
                )
            orders = records.active_orders(connection)
            public = records.public_launches_of(connection, model)
        tier_sets = records.TierSets()
        return check_access(
            person_id=person,
            model=model,
            surface=surface,
            person=facts,
            partner=partner,
            orders=orders,
            grants=[records.grant_facts(row, tier_sets) for row in grant_rows],
            variant=variant,
            public=public,
        )

    def snapshot(self) -> Snapshot:
        """Everything checks need, read in one transaction (for :class:`AccessChecker`), with
        the access clock it reflects (read first)."""
        tier_sets = records.TierSets()
        started = time.monotonic()  # the snapshot is as old as the moment reading began
        grant_query = sa.select(*records.GRANT_FACT_COLUMNS).order_by(*records.GRANT_FACT_ORDER)
        with self._read("read an access snapshot", consistent=True) as connection:
            clock = _clock(connection)
            people_by_id = {
                row.id: records.person_facts(row)
                for row in connection.execute(sa.select(*_PERSON_FACT_COLUMNS))
            }
            partners_by_id = {
                row.id: records.partner_facts(row)
                for row in connection.execute(sa.select(*_PARTNER_FACT_COLUMNS))
            }
            orders = records.active_orders(connection)
            grant_facts = [
                records.grant_facts(row, tier_sets) for row in connection.execute(grant_query)
            ]
            public = records.public_launches_of(connection)
        return Snapshot(
            people=people_by_id,
            partners=partners_by_id,
            orders=orders,
            grants=grant_facts,
            taken_at=started,
            public=public,
            seq=clock.seq,
            epoch=clock.epoch,
        )

    # -- the change feed -------------------------------------------------------------------

    def access_clock(self) -> AccessClock:
        """The access clock (one cheap read): ``seq`` moves with every committed write to
        partners, people, grants, orders or public launches (triggers, migration 0009, so also
        writes that bypass this class); ``epoch`` moves when a row was deleted or moved."""
        with self._read("read the access clock") as connection:
            return _clock(connection)

    def access_changes(self, since: int) -> AccessChanges:
        """The rows changed after ``since`` (a ``seq`` of :meth:`access_clock`), read in one
        transaction that reads the clock first (see :class:`~gatekeeper.access.AccessChanges`).

        Writers commit in ``seq`` order (each holds the clock row until it commits), so every
        change up to the returned ``seq`` is included; rows of later commits may be too.
        """
        tier_sets = records.TierSets()
        with self._read("read access changes", consistent=True) as connection:
            clock = _clock(connection)
            changed_people = [
                records.person_facts(row)
                for row in connection.execute(
                    sa.select(*_PERSON_FACT_COLUMNS).where(people.c.change_seq > since)
                )
            ]
            changed_partners = [
                records.partner_facts(row)
                for row in connection.execute(
                    sa.select(*_PARTNER_FACT_COLUMNS).where(partners.c.change_seq > since)
                )
            ]
            changed_grants = [
                records.grant_facts(row, tier_sets)
                for row in connection.execute(
                    sa.select(*records.GRANT_FACT_COLUMNS)
                    .where(grants.c.change_seq > since)
                    .order_by(*records.GRANT_FACT_ORDER)
                )
            ]
            orders = None
            if _changed(connection, access_orders.c.change_seq, since):
                orders = records.active_orders(connection)
            public = None
            if _changed(connection, public_launches.c.change_seq, since):
                public = records.public_launches_of(connection)
        return AccessChanges(
            seq=clock.seq,
            epoch=clock.epoch,
            people=changed_people,
            partners=changed_partners,
            grants=changed_grants,
            orders=orders,
            public=public,
        )

    def checker(self, *, max_age: float | None = None) -> AccessChecker:
        """An in-process checker over a snapshot of this registry (see ``AccessChecker``)."""
        return AccessChecker(self, max_age=max_age)

    def _need(self, connection: Connection, column: sa.Column[str], value: str, what: str) -> None:
        if not _exists(connection, column, value):
            raise RegistryError(f"no {what} {value}", retryable=False)


def _clock(connection: Connection) -> AccessClock:
    row = connection.execute(
        sa.select(access_clock.c.seq, access_clock.c.epoch).where(access_clock.c.id == 1)
    ).first()
    if row is None:  # the migration creates the row and a trigger keeps it
        raise RegistryError("the access clock row is missing", retryable=False)
    return AccessClock(seq=row.seq, epoch=row.epoch)


def _changed(connection: Connection, column: sa.Column[int], since: int) -> bool:
    return connection.execute(sa.select(column).where(column > since).limit(1)).first() is not None


def _exists(connection: Connection, column: sa.Column[str], value: str) -> bool:
    return connection.execute(sa.select(column).where(column == value)).first() is not None

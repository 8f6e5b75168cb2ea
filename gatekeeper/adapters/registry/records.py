"""Rows to models and facts, and the store of idempotent operation results."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from gatekeeper.access import (
    GrantFacts,
    GrantStatus,
    OrderFacts,
    PartnerFacts,
    PersonFacts,
    PublicFacts,
)
from gatekeeper.adapters.registry.models import Partner, PublicLaunch, RegisteredPerson
from gatekeeper.adapters.registry.tables import (
    access_orders,
    grants,
    operations,
    partners,
    public_launches,
)
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.orders import AccessOrder
from gatekeeper.models.status import GrantRecord

#: Columns of a grant as ``GrantRecord`` shows it (the partner's name comes from a join).
GRANT_RECORD_COLUMNS = (
    grants.c.grant_id,
    grants.c.partner_id,
    partners.c.name.label("partner_name"),
    grants.c.cohort,
    grants.c.jurisdiction,
    grants.c.surface,
    grants.c.status,
    grants.c.granted_at,
    grants.c.changed_at,
    grants.c.reason,
    grants.c.order_id,
)


#: A result row of any shape (rows are read by column name).
AnyRow = Row[*tuple[Any, ...]]

#: Ids per statement when updating many rows (SQLite caps bound parameters).
CHUNK = 500


def chunks(ids: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def partner_model(row: AnyRow) -> Partner:
    return Partner(id=row.id, name=row.name, tier=row.tier, jurisdiction=row.jurisdiction)


def person_model(row: AnyRow) -> RegisteredPerson:
    return RegisteredPerson(
        id=row.id, partner_id=row.partner_id, nationality=row.nationality, location=row.location
    )


def partner_facts(row: AnyRow) -> PartnerFacts:
    return PartnerFacts(
        id=sys.intern(row.id), tier=VettingTier(row.tier), jurisdiction=sys.intern(row.jurisdiction)
    )


def person_facts(row: AnyRow) -> PersonFacts:
    return PersonFacts(
        id=row.id,
        partner_id=_interned(row.partner_id),
        nationality=NationalityStatus(row.nationality),
        location=_interned(row.location),
    )


def _interned(text: str | None) -> str | None:
    """One string object per value for values many rows repeat (partner ids, model names):
    an access view holds 100,000 grants, and each row read brings its own copies."""
    return None if text is None else sys.intern(text)


def _fields(row: AnyRow) -> dict[str, Any]:
    """A row's columns as a model's fields (without the change feed's stamp)."""
    fields = row._asdict()
    fields.pop("change_seq", None)
    return fields


def order_model(row: AnyRow) -> AccessOrder:
    return AccessOrder.model_validate(_fields(row))


def order_facts(row: AnyRow) -> OrderFacts:
    return OrderFacts(
        order_id=row.order_id,
        models=frozenset(row.models),
        scope=row.scope,
        exempt_partners=frozenset(row.exempt_partners),
        model_exemptions=frozenset(
            (partner, model)
            for exemption in row.exemptions
            for partner in exemption["partners"]
            for model in exemption["models"]
        ),
    )


def public_model(row: AnyRow) -> PublicLaunch:
    return PublicLaunch.model_validate(_fields(row))


def public_facts(row: AnyRow) -> PublicFacts:
    return PublicFacts(
        model=row.model_name,
        variant=row.model_version,
        surface=_SURFACES[row.surface],
        release_id=row.release_id,
    )


def public_launches_of(connection: Connection, model: str | None = None) -> list[PublicFacts]:
    """Public launches (of ``model``, or all), oldest first."""
    query = sa.select(public_launches).order_by(
        public_launches.c.published_at, public_launches.c.release_id
    )
    if model is not None:
        query = query.where(public_launches.c.model_name == model)
    return [public_facts(row) for row in connection.execute(query)]


def grant_record(row: AnyRow) -> GrantRecord:
    return GrantRecord.model_validate(row._asdict())


#: Columns a check needs of a grant; tiers stay JSON text so equal sets are parsed once.
GRANT_FACT_COLUMNS = (
    grants.c.grant_id,
    grants.c.partner_id,
    grants.c.model_name,
    grants.c.model_version,
    grants.c.surface,
    grants.c.status,
    sa.cast(grants.c.tiers, sa.Text).label("tiers"),
    grants.c.order_id,
    # As the driver returns it (SQLite: text), parsed once per distinct value (TierSets.moment):
    # parsing each of 100,000 rows' timestamps took a third of a snapshot's time.
    sa.type_coerce(grants.c.granted_at, sa.types.NullType()).label("granted_at"),
)
#: The order checks consult a partner's grants in (``GrantFacts`` sort the same way).
GRANT_FACT_ORDER = (grants.c.granted_at, grants.c.grant_id)
_SURFACES = {s.value: s for s in Surface}


class TierSets:
    """Interns the tier sets of grants (a registry has few cohorts and many grants), and their
    grant times (a fan-out grants thousands at one moment)."""

    def __init__(self) -> None:
        self._sets: dict[str, frozenset[VettingTier]] = {}
        self._moments: dict[object, datetime] = {}

    def moment(self, at: object) -> datetime:
        """A grant time read raw (a ``datetime``, or SQLite's text) as a UTC datetime."""
        found = self._moments.get(at)
        if found is None:
            found = self._moments[at] = _utc(at)
        return found

    def get(self, tiers_json: str) -> frozenset[VettingTier]:
        found = self._sets.get(tiers_json)
        if found is None:
            found = frozenset(VettingTier(t) for t in json.loads(tiers_json))
            self._sets[tiers_json] = found
        return found


def _utc(at: object) -> datetime:
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError as err:
            raise RegistryError(f"unreadable grant time {at!r}", retryable=False) from err
    if not isinstance(at, datetime):
        raise RegistryError(f"unreadable grant time {at!r}", retryable=False)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def grant_facts(row: AnyRow, tier_sets: TierSets) -> GrantFacts:
    """Facts of a grant read with :data:`GRANT_FACT_COLUMNS`."""
    grant_id, partner_id, model, variant, surface, status, tiers, order_id, granted_at = row
    return GrantFacts(
        grant_id=grant_id,
        partner_id=sys.intern(partner_id),
        model=sys.intern(model),
        variant=sys.intern(variant),
        surface=_SURFACES[surface],
        status=_STATUSES[status],
        tiers=tier_sets.get(tiers),
        order_id=_interned(order_id),
        granted_at=tier_sets.moment(granted_at),
    )


_STATUSES: dict[str, GrantStatus] = {
    "active": "active",
    "suspended": "suspended",
    "revoked": "revoked",
}


def active_orders(connection: Connection) -> list[OrderFacts]:
    """Active orders in issue order, the order checks consult them in."""
    query = (
        sa.select(access_orders)
        .where(access_orders.c.status == "active")
        .order_by(access_orders.c.issued_at, access_orders.c.order_id)
    )
    return [order_facts(row) for row in connection.execute(query)]


#: Longest idempotency key the registry stores (grant keys add a partner id and a surface).
MAX_KEY = 300


def recall(
    connection: Connection, key: str, kind: str, digest: str, *, conflict: str
) -> dict[str, Any] | None:
    """The stored result of an earlier operation with ``key``, or ``None`` if there was none.

    Raises:
        RegistryError: (not retryable) the key was used for a different request (``conflict``
            is the message), or it is longer than :data:`MAX_KEY`.
    """
    if len(key) > MAX_KEY:
        raise RegistryError(f"idempotency key longer than {MAX_KEY} characters", retryable=False)
    row = connection.execute(sa.select(operations).where(operations.c.key == key)).first()
    if row is None:
        return None
    if row.kind != kind or row.digest != digest:
        raise RegistryError(conflict, retryable=False)
    result: dict[str, Any] = row.result
    return result


def remember(
    connection: Connection,
    key: str,
    kind: str,
    digest: str,
    result: dict[str, Any],
    at: datetime,
) -> None:
    connection.execute(
        sa.insert(operations).values(
            key=key, kind=kind, digest=digest, result=result, created_at=at
        )
    )

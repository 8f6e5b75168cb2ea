"""Who may use which model, now: the access decision and the fast in-process checker.

The decision is a pure function of facts (the person, their partner organisation, the active
access orders naming the model, the partner's grants for the model and surface), taken in a fixed
order. The first rule that applies answers:

1. ``unknown_person`` - the person is not in the registry: deny.
2. ``order`` / ``fail_closed`` - an active order names the model (or all models), the person's
   partner is not exempt, and the order's scope covers the person: deny. A nationality scope
   (``foreign_persons``) covers foreign persons, and persons whose nationality is unknown are
   denied as if foreign (``fail_closed``). A jurisdiction scope covers persons located there or
   working for a partner organisation there; an unknown location is denied (``fail_closed``).
   ``everyone`` covers everyone. Exemptions name partners (for all of the order's models or
   some of them) and cover all their staff.
3. ``public`` - a launch published the model (and variant, when asked) on the surface: allow.
4. ``no_grant`` - the person belongs to no partner organisation: deny.
5. ``grant`` - the partner holds an active grant for the model (and variant, when asked) on the
   surface, and its current vetting tier is one the grant's cohort admits: allow.
6. ``tier`` - an active grant exists but the partner's tier no longer qualifies: deny.
7. ``suspended`` - the only grants are suspended (by an order): deny.
8. ``no_grant`` - otherwise: deny.

Serving stacks call :class:`AccessChecker`, which holds an immutable snapshot of the registry in
dictionaries and answers in microseconds; ``refresh()`` swaps in a new snapshot atomically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier

#: An order naming this model covers every model.
ALL_MODELS = "*"
FOREIGN_PERSONS = "foreign_persons"
EVERYONE = "everyone"
JURISDICTION_PREFIX = "jurisdiction:"

GrantStatus = Literal["active", "suspended", "revoked"]


class AccessRule(StrEnum):
    """The rule that decided an access check."""

    UNKNOWN_PERSON = "unknown_person"
    ORDER = "order"
    FAIL_CLOSED = "fail_closed"
    PUBLIC = "public"
    GRANT = "grant"
    TIER = "tier"
    SUSPENDED = "suspended"
    NO_GRANT = "no_grant"


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """The answer to "may this person use this model on this surface?"."""

    allowed: bool
    rule: AccessRule
    reason: str
    grant_id: str | None = None
    order_id: str | None = None

    def line(self) -> str:
        """One line for a person: ``allow (grant): ...`` or ``deny (order): ...``."""
        return f"{'allow' if self.allowed else 'deny'} ({self.rule.value}): {self.reason}"


@dataclass(frozen=True, slots=True)
class PersonFacts:
    id: str
    partner_id: str | None
    nationality: NationalityStatus
    location: str | None


@dataclass(frozen=True, slots=True)
class PartnerFacts:
    id: str
    tier: VettingTier
    jurisdiction: str


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """An active order. ``models`` holds model names or :data:`ALL_MODELS`.

    ``exempt_partners`` are exempt for every model the order names; ``model_exemptions`` holds
    ``(partner, model)`` pairs exempt for one model (or :data:`ALL_MODELS`).
    """

    order_id: str
    models: frozenset[str]
    scope: str
    exempt_partners: frozenset[str] = frozenset()
    model_exemptions: frozenset[tuple[str, str]] = frozenset()

    def names(self, model: str) -> bool:
        return ALL_MODELS in self.models or model in self.models

    def exempts(self, partner_id: str | None, model: str) -> bool:
        if partner_id is None:
            return False
        return (
            partner_id in self.exempt_partners
            or (partner_id, model) in self.model_exemptions
            or (partner_id, ALL_MODELS) in self.model_exemptions
        )


@dataclass(frozen=True, slots=True)
class GrantFacts:
    grant_id: str
    partner_id: str
    model: str
    variant: str
    surface: Surface
    status: GrantStatus
    tiers: frozenset[VettingTier]
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class PublicFacts:
    """A model version a launch published to the public on one surface."""

    model: str
    variant: str
    surface: Surface
    release_id: str


def scope_jurisdiction(scope: str) -> str | None:
    """The jurisdiction code of a ``jurisdiction:<code>`` scope, else ``None``."""
    if scope.startswith(JURISDICTION_PREFIX):
        return scope[len(JURISDICTION_PREFIX) :]
    return None


def order_covers_partner(order: OrderFacts, partner: PartnerFacts, model: str) -> bool:
    """Whether ``order`` denies every person of ``partner`` the model, so its grants suspend.

    A ``foreign_persons`` order never covers a whole organisation: it is enforced per person.
    """
    if not order.names(model) or order.exempts(partner.id, model):
        return False
    if order.scope == EVERYONE:
        return True
    return scope_jurisdiction(order.scope) == partner.jurisdiction


def _order_denial(
    order: OrderFacts, person: PersonFacts, partner: PartnerFacts | None, model: str
) -> AccessDecision | None:
    if order.exempts(person.partner_id, model):
        return None
    oid = order.order_id
    if order.scope == EVERYONE:
        return AccessDecision(False, AccessRule.ORDER, f"order {oid} covers everyone", None, oid)
    if order.scope == FOREIGN_PERSONS:
        if person.nationality is NationalityStatus.FOREIGN_PERSON:
            reason = f"order {oid} covers foreign persons"
            return AccessDecision(False, AccessRule.ORDER, reason, None, oid)
        if person.nationality is NationalityStatus.UNKNOWN:
            reason = f"order {oid} covers foreign persons and {person.id}'s nationality is unknown"
            return AccessDecision(False, AccessRule.FAIL_CLOSED, reason, None, oid)
        return None
    code = scope_jurisdiction(order.scope)
    if code is None:  # a scope we do not understand covers everyone: fail closed
        reason = f"order {oid} has unrecognised scope {order.scope!r}"
        return AccessDecision(False, AccessRule.FAIL_CLOSED, reason, None, oid)
    if person.location is None:
        reason = f"order {oid} covers jurisdiction {code} and {person.id}'s location is unknown"
        return AccessDecision(False, AccessRule.FAIL_CLOSED, reason, None, oid)
    if person.location == code or (partner is not None and partner.jurisdiction == code):
        reason = f"order {oid} covers jurisdiction {code}"
        return AccessDecision(False, AccessRule.ORDER, reason, None, oid)
    return None


def check_access(
    *,
    person_id: str,
    model: str,
    surface: Surface | str,
    person: PersonFacts | None,
    partner: PartnerFacts | None,
    orders: Iterable[OrderFacts],
    grants: Iterable[GrantFacts],
    variant: str | None = None,
    public: Iterable[PublicFacts] = (),
) -> AccessDecision:
    """Decide one access check from facts, in the order the module docstring lists.

    Args:
        person_id: who asks (used in reasons when ``person`` is ``None``).
        model: the model name.
        surface: API, app or cloud marketplace.
        person: the person's registry facts, ``None`` if unknown.
        partner: the person's partner organisation, ``None`` if they have none.
        orders: active orders, in issue order; those not naming ``model`` are ignored.
        grants: the partner's grants; those for another model, variant or surface are ignored.
        variant: a model version to require, or ``None`` for any variant.
        public: public launches; those of another model, variant or surface are ignored.
    """
    if person is None:
        return AccessDecision(False, AccessRule.UNKNOWN_PERSON, f"no person {person_id!r}")
    for order in orders:
        if order.names(model):
            denial = _order_denial(order, person, partner, model)
            if denial is not None:
                return denial
    for launch in public:
        if (
            launch.model == model
            and launch.surface == surface
            and (variant is None or launch.variant == variant)
        ):
            reason = (
                f"{model} {launch.variant} is public on {surface} (release {launch.release_id})"
            )
            return AccessDecision(True, AccessRule.PUBLIC, reason)
    if partner is None:
        reason = f"{person.id} belongs to no partner organisation"
        return AccessDecision(False, AccessRule.NO_GRANT, reason)
    tier_denial: AccessDecision | None = None
    suspension: AccessDecision | None = None
    for grant in grants:
        if (
            grant.partner_id != partner.id
            or grant.model != model
            or grant.surface != surface
            or (variant is not None and grant.variant != variant)
        ):
            continue
        if grant.status == "active":
            if partner.tier in grant.tiers:
                reason = f"grant {grant.grant_id} to {partner.id} for {model} {grant.variant}"
                return AccessDecision(True, AccessRule.GRANT, reason, grant.grant_id)
            if tier_denial is None:
                reason = (
                    f"grant {grant.grant_id} admits tiers {_join(grant.tiers)}; "
                    f"{partner.id} is now {partner.tier.value}"
                )
                tier_denial = AccessDecision(False, AccessRule.TIER, reason, grant.grant_id)
        elif grant.status == "suspended" and suspension is None:
            by = f" by order {grant.order_id}" if grant.order_id else ""
            reason = f"grant {grant.grant_id} is suspended{by}"
            suspension = AccessDecision(
                False, AccessRule.SUSPENDED, reason, grant.grant_id, grant.order_id
            )
    if tier_denial is not None:
        return tier_denial
    if suspension is not None:
        return suspension
    what = f"{model} {variant}" if variant else model
    reason = f"{partner.id} holds no active grant for {what} on {surface}"
    return AccessDecision(False, AccessRule.NO_GRANT, reason)


def _join(tiers: Iterable[VettingTier]) -> str:
    return ", ".join(sorted(t.value for t in tiers))


@dataclass(frozen=True)
class Snapshot:
    """Everything a check needs, read from the registry at one moment.

    ``orders`` are the active orders in issue order; ``grants`` the grants that are not revoked;
    ``public`` the public launches.
    """

    people: dict[str, PersonFacts]
    partners: dict[str, PartnerFacts]
    orders: list[OrderFacts]
    grants: list[GrantFacts]
    taken_at: float = field(default_factory=time.monotonic)
    public: list[PublicFacts] = field(default_factory=list)


class SnapshotSource(Protocol):
    """Anything that can read a snapshot; the access registry is one."""

    def snapshot(self) -> Snapshot: ...


GrantKey = tuple[str, str, str]
PublicKey = tuple[str, str]


@dataclass(frozen=True)
class _Index:
    people: dict[str, PersonFacts]
    partners: dict[str, PartnerFacts]
    orders_for_model: dict[str, tuple[OrderFacts, ...]]
    orders_for_any: tuple[OrderFacts, ...]
    grants: dict[GrantKey, list[GrantFacts]]  # never changed once built
    taken_at: float
    public: dict[PublicKey, tuple[PublicFacts, ...]]

    @classmethod
    def build(cls, snap: Snapshot) -> _Index:
        wildcard = tuple(o for o in snap.orders if ALL_MODELS in o.models)
        named = {m for o in snap.orders for m in o.models if m != ALL_MODELS}
        # Each model's tuple keeps issue order, so the first covering order is the one reported.
        per_model = {m: tuple(o for o in snap.orders if o.names(m)) for m in named}
        grants: dict[GrantKey, list[GrantFacts]] = {}
        for grant in snap.grants:
            if grant.status != "revoked":
                key = (grant.partner_id, grant.model, grant.surface.value)
                bucket = grants.get(key)
                if bucket is None:
                    grants[key] = [grant]
                else:
                    bucket.append(grant)
        public: dict[PublicKey, tuple[PublicFacts, ...]] = {}
        for launch in snap.public:
            where = (launch.model, launch.surface.value)
            public[where] = (*public.get(where, ()), launch)
        return cls(
            people=snap.people,
            partners=snap.partners,
            orders_for_model=per_model,
            orders_for_any=wildcard,
            grants=grants,
            taken_at=snap.taken_at,
            public=public,
        )


class AccessChecker:
    """In-process access checks against an in-memory snapshot of the registry.

    ``check`` does a handful of dictionary look-ups and never touches the database. Call
    ``refresh()`` (from a timer or after an order) to load a new snapshot; it is built aside and
    swapped in with one assignment, so concurrent checks see either the old or the new snapshot.

    Args:
        source: where snapshots come from (an ``AccessRegistry``).
        max_age: if set, a check made when the snapshot is older than this many seconds
            refreshes first, on the calling thread, so a missed timer cannot leave a stale
            answer for long.
    """

    def __init__(self, source: SnapshotSource, *, max_age: float | None = None) -> None:
        self._source = source
        self._max_age = max_age
        self._lock = threading.Lock()
        self._clock: Callable[[], float] = time.monotonic
        self._index = _Index.build(source.snapshot())

    @property
    def taken_at(self) -> float:
        """``time.monotonic()`` when the snapshot in use was read."""
        return self._index.taken_at

    def refresh(self) -> None:
        """Read a new snapshot and swap it in."""
        with self._lock:  # one refresh at a time; checks never wait for it
            self._index = _Index.build(self._source.snapshot())

    def _refresh_stale(self, max_age: float) -> _Index:
        with self._lock:
            # Threads that queued behind another's refresh find the index fresh and skip theirs.
            if self._clock() - self._index.taken_at > max_age:
                self._index = _Index.build(self._source.snapshot())
            return self._index

    def check(
        self,
        model: str,
        person: str,
        surface: Surface | str = Surface.API,
        variant: str | None = None,
    ) -> AccessDecision:
        """Decide whether ``person`` may use ``model`` on ``surface`` (see the module docstring)."""
        index = self._index
        if self._max_age is not None and self._clock() - index.taken_at > self._max_age:
            index = self._refresh_stale(self._max_age)
        facts = index.people.get(person)
        partner = None
        grants: Sequence[GrantFacts] = ()
        if facts is not None and facts.partner_id is not None:
            partner = index.partners.get(facts.partner_id)
            grants = index.grants.get((facts.partner_id, model, str(surface)), ())
        return check_access(
            person_id=person,
            model=model,
            surface=surface,
            person=facts,
            partner=partner,
            orders=index.orders_for_model.get(model, index.orders_for_any),
            grants=grants,
            variant=variant,
            public=index.public.get((model, str(surface)), ()),
        )

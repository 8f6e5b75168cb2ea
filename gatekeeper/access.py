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
7. ``suspended`` - the only grants left are suspended (by an order): deny.
8. ``revoked`` - the partner's grants for the model (and variant) on the surface were all
   revoked (the release was withdrawn, or access taken back): deny.
9. ``no_grant`` - otherwise: deny.

An allow (3 or 5) that stands only because the person's partner is exempt from an active order
naming the model, which would otherwise cover the person, is reported as ``exemption``: the
decision names the order and the grant (none for a public launch).

Serving stacks call :class:`AccessChecker`, which holds an immutable view of the registry in
dictionaries and answers in microseconds; ``update()`` applies the registry's changes since the
view (its change feed) and ``refresh()`` loads a whole new snapshot, each swapped in atomically.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

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
    EXEMPTION = "exemption"
    TIER = "tier"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
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
    #: When granted: a partner's grants are consulted oldest first (then by id).
    granted_at: datetime | None = None


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
    order: OrderFacts, person: PersonFacts, partner: PartnerFacts | None
) -> AccessDecision | None:
    """How ``order`` denies ``person`` (exemptions aside), or ``None`` if its scope does not
    cover them."""
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
    spared: AccessDecision | None = None  # the first order an exemption spares the person
    for order in orders:
        if order.names(model):
            denial = _order_denial(order, person, partner)
            if denial is None:
                continue
            if not order.exempts(person.partner_id, model):
                return denial
            if spared is None:
                spared = denial
    for launch in public:
        if (
            launch.model == model
            and launch.surface == surface
            and (variant is None or launch.variant == variant)
        ):
            reason = (
                f"{model} {launch.variant} is public on {surface} (release {launch.release_id})"
            )
            return _allow(AccessRule.PUBLIC, reason, None, spared, person)
    if partner is None:
        reason = f"{person.id} belongs to no partner organisation"
        return AccessDecision(False, AccessRule.NO_GRANT, reason)
    tier_denial: AccessDecision | None = None
    suspension: AccessDecision | None = None
    revocation: GrantFacts | None = None
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
                return _allow(AccessRule.GRANT, reason, grant.grant_id, spared, person)
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
        elif grant.status == "revoked":
            revocation = grant  # the latest revoked grant is the one reported
    if tier_denial is not None:
        return tier_denial
    if suspension is not None:
        return suspension
    if revocation is not None:
        by = f" (order {revocation.order_id})" if revocation.order_id else ""
        reason = (
            f"grant {revocation.grant_id} to {partner.id} for {model} {revocation.variant} "
            f"on {surface} was revoked{by}"
        )
        return AccessDecision(
            False, AccessRule.REVOKED, reason, revocation.grant_id, revocation.order_id
        )
    what = f"{model} {variant}" if variant else model
    reason = f"{partner.id} holds no active grant for {what} on {surface}"
    return AccessDecision(False, AccessRule.NO_GRANT, reason)


def _allow(
    rule: AccessRule,
    reason: str,
    grant_id: str | None,
    spared: AccessDecision | None,
    person: PersonFacts,
) -> AccessDecision:
    """An allow by ``rule``, or by ``exemption`` when an order would have denied it (``spared``:
    how the first such order would have)."""
    if spared is None:
        return AccessDecision(True, rule, reason, grant_id)
    reason = f"{spared.reason}, but {person.partner_id} is exempt; {reason}"
    return AccessDecision(True, AccessRule.EXEMPTION, reason, grant_id, spared.order_id)


def _join(tiers: Iterable[VettingTier]) -> str:
    return ", ".join(sorted(t.value for t in tiers))


@dataclass(frozen=True)
class Snapshot:
    """Everything a check needs, read from the registry at one moment.

    ``orders`` are the active orders in issue order; ``grants`` every grant, revoked ones
    included (the ``revoked`` rule needs them), oldest first; ``public`` the public launches.
    ``seq`` and ``epoch`` are the registry's access clock the snapshot reflects (read first, in
    the same transaction): :meth:`AccessChecker.update` follows changes from there.
    """

    people: dict[str, PersonFacts]
    partners: dict[str, PartnerFacts]
    orders: list[OrderFacts]
    grants: list[GrantFacts]
    taken_at: float = field(default_factory=time.monotonic)
    public: list[PublicFacts] = field(default_factory=list)
    seq: int = 0
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class AccessClock:
    """The registry's access clock: ``seq`` grows with every committed write to the tables
    checks read (partners, people, grants, orders, public launches); ``epoch`` grows when a row
    was deleted (or moved), after which a reader must reload everything."""

    seq: int
    epoch: int


@dataclass(frozen=True, slots=True)
class AccessChanges:
    """What changed in the registry after a reader's ``seq``, read in one transaction.

    ``seq``/``epoch`` are the clock read first: every change up to ``seq`` is in here (a few
    newer ones may be too: applying a row's current state again changes nothing). ``people``,
    ``partners`` and ``grants`` are the changed rows' current facts (revoked grants included);
    ``orders`` is the full list of active orders in issue order if any order changed, else
    ``None``; ``public`` the full list of public launches if any changed, else ``None``.
    """

    seq: int
    epoch: int
    people: list[PersonFacts]
    partners: list[PartnerFacts]
    grants: list[GrantFacts]
    orders: list[OrderFacts] | None
    public: list[PublicFacts] | None


class SnapshotSource(Protocol):
    """Anything that can read a snapshot; the access registry is one."""

    def snapshot(self) -> Snapshot: ...


@runtime_checkable
class ChangeSource(Protocol):
    """A snapshot source that also has a change feed (the access registry)."""

    def snapshot(self) -> Snapshot: ...

    def access_clock(self) -> AccessClock: ...

    def access_changes(self, since: int) -> AccessChanges: ...


#: A grant bucket's key within a partner: (model, surface).
GrantKey = tuple[str, str]
PublicKey = tuple[str, str]
_Buckets = dict[GrantKey, tuple[GrantFacts, ...]]
_NO_BUCKETS: _Buckets = {}
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _grant_order(grant: GrantFacts) -> tuple[datetime, str]:
    """The order checks consult a partner's grants in (the registry's: oldest, then by id)."""
    return (grant.granted_at or _EARLIEST, grant.grant_id)


@dataclass(frozen=True)
class _Index:
    """An immutable view for checks. Nothing in it changes once built: :meth:`apply` builds a
    new index sharing what did not change (copy on write)."""

    people: dict[str, PersonFacts]
    partners: dict[str, PartnerFacts]
    orders_for_model: dict[str, tuple[OrderFacts, ...]]
    orders_for_any: tuple[OrderFacts, ...]
    #: partner -> (model, surface) -> that partner's grants, in :func:`_grant_order`.
    grants: dict[str, _Buckets]
    taken_at: float
    public: dict[PublicKey, tuple[PublicFacts, ...]]
    seq: int
    epoch: int

    @classmethod
    def build(cls, snap: Snapshot) -> _Index:
        orders_for_model, orders_for_any = _order_index(snap.orders)
        grants: dict[str, _Buckets] = {}
        keys: dict[GrantKey, GrantKey] = {}  # one key tuple per (model, surface)
        shared: list[tuple[_Buckets, GrantKey]] = []  # buckets of more than one grant
        for grant in snap.grants:
            key = (grant.model, grant.surface.value)
            key = keys.setdefault(key, key)
            buckets = grants.get(grant.partner_id)
            if buckets is None:
                grants[grant.partner_id] = {key: (grant,)}
                continue
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = (grant,)
            else:
                if len(bucket) == 1:
                    shared.append((buckets, key))
                buckets[key] = (*bucket, grant)
        for buckets, key in shared:
            buckets[key] = _sorted(list(buckets[key]))
        return cls(
            people=snap.people,
            partners=snap.partners,
            orders_for_model=orders_for_model,
            orders_for_any=orders_for_any,
            grants=grants,
            taken_at=snap.taken_at,
            public=_public_index(snap.public),
            seq=snap.seq,
            epoch=snap.epoch,
        )

    def apply(self, changes: AccessChanges, taken_at: float) -> _Index:
        """A new index: this one with ``changes`` applied (unchanged parts are shared)."""
        people = self.people
        if changes.people:
            people = {**people, **{p.id: p for p in changes.people}}
        partners = self.partners
        if changes.partners:
            partners = {**partners, **{p.id: p for p in changes.partners}}
        orders_for_model, orders_for_any = self.orders_for_model, self.orders_for_any
        if changes.orders is not None:
            orders_for_model, orders_for_any = _order_index(changes.orders)
        grants = self.grants
        if changes.grants:
            grants = dict(grants)
            copied: set[str] = set()
            for grant in changes.grants:
                buckets = grants.get(grant.partner_id, _NO_BUCKETS)
                if grant.partner_id not in copied:
                    buckets = grants[grant.partner_id] = dict(buckets)
                    copied.add(grant.partner_id)
                key = (grant.model, grant.surface.value)
                old = buckets.get(key, ())
                buckets[key] = _sorted([g for g in old if g.grant_id != grant.grant_id] + [grant])
        public = self.public if changes.public is None else _public_index(changes.public)
        return _Index(
            people=people,
            partners=partners,
            orders_for_model=orders_for_model,
            orders_for_any=orders_for_any,
            grants=grants,
            taken_at=taken_at,
            public=public,
            seq=changes.seq,
            epoch=changes.epoch,
        )


def _sorted(bucket: list[GrantFacts]) -> tuple[GrantFacts, ...]:
    if len(bucket) > 1:
        bucket.sort(key=_grant_order)
    return tuple(bucket)


def _order_index(
    orders: Sequence[OrderFacts],
) -> tuple[dict[str, tuple[OrderFacts, ...]], tuple[OrderFacts, ...]]:
    wildcard = tuple(o for o in orders if ALL_MODELS in o.models)
    named = {m for o in orders for m in o.models if m != ALL_MODELS}
    # Each model's tuple keeps issue order, so the first covering order is the one reported.
    return {m: tuple(o for o in orders if o.names(m)) for m in named}, wildcard


def _public_index(launches: Iterable[PublicFacts]) -> dict[PublicKey, tuple[PublicFacts, ...]]:
    public: dict[PublicKey, tuple[PublicFacts, ...]] = {}
    for launch in launches:
        where = (launch.model, launch.surface.value)
        public[where] = (*public.get(where, ()), launch)
    return public


class AccessChecker:
    """In-process access checks against an in-memory view of the registry.

    ``check`` does a handful of dictionary look-ups and never touches the database. The view is
    immutable: ``update()`` (from a poll loop) applies the registry's changes since the view's
    ``seq`` to a copy and swaps it in with one assignment; ``refresh()`` loads a whole new
    snapshot the same way. Concurrent checks see either the old or the new view.

    Args:
        source: where snapshots (and, for ``update``, changes) come from (an ``AccessRegistry``).
        max_age: if set, a check made when the view is older than this many seconds refreshes
            first, on the calling thread, so a missed timer cannot leave a stale answer for long.
    """

    def __init__(self, source: SnapshotSource, *, max_age: float | None = None) -> None:
        self._source = source
        self._max_age = max_age
        self._lock = threading.Lock()
        self._clock: Callable[[], float] = time.monotonic
        self._index = _Index.build(source.snapshot())

    @property
    def taken_at(self) -> float:
        """``time.monotonic()`` when the registry was last read for the view in use (by
        ``refresh()``, or by ``update()``, which also confirms an unchanged view current)."""
        return self._index.taken_at

    @property
    def seq(self) -> int:
        """The registry change ``seq`` the view reflects."""
        return self._index.seq

    def refresh(self) -> None:
        """Read a new snapshot and swap it in."""
        with self._lock:  # one refresh at a time; checks never wait for it
            self._index = _Index.build(self._source.snapshot())

    def update(self) -> bool:
        """Bring the view up to date with the registry: read its access clock and, if ``seq``
        moved, apply only the changes since the view's ``seq`` (to a copy, swapped in). A new
        ``epoch`` (rows were deleted) or a clock behind the view (a restored database) loads a
        whole snapshot instead. A source without a change feed is refreshed.

        Returns:
            whether the view changed (``taken_at`` moves either way).

        Raises:
            RegistryError: the registry could not be read; the view stays as it was.
        """
        source = self._source
        if not isinstance(source, ChangeSource):
            self.refresh()
            return True
        with self._lock:
            index = self._index
            started = self._clock()
            clock = source.access_clock()
            if clock.epoch == index.epoch and clock.seq == index.seq:
                self._index = replace(index, taken_at=started)
                return False
            changes = None
            if clock.epoch == index.epoch and clock.seq > index.seq:
                changes = source.access_changes(index.seq)
            if changes is None or changes.epoch != index.epoch:
                self._index = _Index.build(source.snapshot())
            else:
                self._index = index.apply(changes, started)
            return True

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
            buckets = index.grants.get(facts.partner_id, _NO_BUCKETS)
            grants = buckets.get((model, str(surface)), ())
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

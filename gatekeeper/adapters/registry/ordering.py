"""Applying, exempting from and lifting access orders, each idempotent.

Applying records the order and suspends the grants it denies to a whole organisation (scope
``everyone``, or a jurisdiction matching the partner's; exempt partners never). A
``foreign_persons`` order suspends no grant: it is enforced person by person at check time,
because an organisation's US staff keep their access. Lifting restores the grants the order
suspended, unless another active order still covers them (they then stay suspended, by it).
An exemption, added while the order is active, names partners (and so all their staff) for some
or all of the order's models and restores their grants the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gatekeeper.access import ALL_MODELS, OrderFacts, order_covers_partner
from gatekeeper.adapters.registry import records
from gatekeeper.adapters.registry.tables import access_orders, grants, partners
from gatekeeper.canonical import digest_of
from gatekeeper.errors import RegistryError
from gatekeeper.models.orders import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    ExemptOrderRequest,
    ExemptOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
    OrderExemption,
    covers_model,
)


def apply_order(connection: Connection, request: ApplyOrderRequest) -> ApplyOrderResult:
    """Record the order and suspend the grants it covers.

    Raises:
        RegistryError: (not retryable) the order id was used for a different order.
    """
    digest = digest_of(request)
    key = f"order-apply:{request.order_id}"
    conflict = f"access order {request.order_id} already exists with different terms"
    done = records.recall(connection, key, "apply_order", digest, conflict=conflict)
    if done is not None:
        return ApplyOrderResult.model_validate(done)
    exists = connection.execute(
        sa.select(access_orders.c.order_id).where(access_orders.c.order_id == request.order_id)
    ).first()
    if exists is not None:
        raise RegistryError(conflict, retryable=False)
    order = AccessOrder(**request.model_dump())
    connection.execute(sa.insert(access_orders).values(**order.model_dump()))
    facts = OrderFacts(
        order_id=order.order_id,
        models=frozenset(order.models),
        scope=order.scope,
        exempt_partners=frozenset(order.exempt_partners),
    )
    suspended: list[str] = []
    for row in _grants_of(connection, order.models, status="active"):
        if order_covers_partner(facts, records.partner_facts(row), row.model_name):
            suspended.append(row.grant_id)
    _set_status(
        connection,
        suspended,
        status="suspended",
        order_id=order.order_id,
        reason=f"suspended by order {order.order_id}: {order.reason}",
        at=order.issued_at,
    )
    result = ApplyOrderResult(
        order=order,
        suspended=suspended,
        affected_releases=_releases_with_grants(connection, order.models),
    )
    records.remember(
        connection, key, "apply_order", digest, result.model_dump(mode="json"), order.issued_at
    )
    return result


def lift_order(connection: Connection, request: LiftOrderRequest) -> LiftOrderResult:
    """Lift the order and restore what it suspended.

    Raises:
        RegistryError: (not retryable) no such order, it was lifted differently already, or the
            lift lacks a safeguard the order requires.
    """
    digest = digest_of(request)
    key = f"order-lift:{request.order_id}"
    conflict = f"access order {request.order_id} was already lifted"
    done = records.recall(connection, key, "lift_order", digest, conflict=conflict)
    if done is not None:
        return LiftOrderResult.model_validate(done)
    order = _active_order(connection, request.order_id, lifted=conflict)
    missing = [s for s in order.required_safeguards if s not in request.safeguards]
    if missing:
        raise RegistryError(
            f"order {order.order_id} can only be lifted with safeguards: {', '.join(missing)}",
            retryable=False,
        )
    lifted = order.model_copy(
        update={
            "status": "lifted",
            "lifted_at": request.lifted_at,
            "lifted_by": request.lifted_by,
            "lift_reason": request.reason,
            "safeguards": list(request.safeguards),
        }
    )
    connection.execute(
        sa.update(access_orders)
        .where(access_orders.c.order_id == order.order_id)
        .values(**lifted.model_dump(include=_LIFT_FIELDS))
    )
    detail = f"; safeguards: {', '.join(request.safeguards)}" if request.safeguards else ""
    at = request.lifted_at
    restored, kept = _release_grants(
        connection,
        order.order_id,
        lambda _partner, _model: True,
        reason=f"restored: order {order.order_id} lifted{detail}",
        at=at,
        why=f"order {order.order_id} lifted",
    )
    result = LiftOrderResult(
        order=lifted,
        restored=restored,
        still_suspended=kept,
        affected_releases=_releases_with_grants(connection, order.models),
    )
    records.remember(connection, key, "lift_order", digest, result.model_dump(mode="json"), at)
    return result


_LIFT_FIELDS = {"status", "lifted_at", "lifted_by", "lift_reason", "safeguards"}


def exempt_order(connection: Connection, request: ExemptOrderRequest) -> ExemptOrderResult:
    """Exempt partners from an active order and restore the grants it suspended for them.

    Raises:
        RegistryError: (not retryable) no such order or partner, the order was lifted, the
            exemption names a model the order does not, or the key was used differently.
    """
    digest = digest_of(request)
    key = f"order-exempt:{request.idempotency_key}"
    conflict = f"exemption {request.idempotency_key} was already recorded with different terms"
    done = records.recall(connection, key, "exempt_order", digest, conflict=conflict)
    if done is not None:
        return ExemptOrderResult.model_validate(done)
    order = _active_order(
        connection, request.order_id, lifted=f"access order {request.order_id} was lifted"
    )
    outside = [m for m in request.models if m != ALL_MODELS and not covers_model(order.models, m)]
    if outside:
        raise RegistryError(
            f"order {order.order_id} does not name {', '.join(outside)} "
            f"(it names {', '.join(order.models)})",
            retryable=False,
        )
    known = set(connection.execute(sa.select(partners.c.id)).scalars())
    unknown = [p for p in request.partners if p not in known]
    if unknown:
        raise RegistryError(f"no partner {', '.join(unknown)}", retryable=False)
    exemption = OrderExemption(
        partners=list(request.partners),
        models=list(request.models),
        by=request.by,
        at=request.at,
        reason=request.reason,
        reference=request.reference,
    )
    updated = order.model_copy(update={"exemptions": [*order.exemptions, exemption]})
    connection.execute(
        sa.update(access_orders)
        .where(access_orders.c.order_id == order.order_id)
        .values(exemptions=[e.model_dump(mode="json") for e in updated.exemptions])
    )
    restored, _kept = _release_grants(
        connection,
        order.order_id,
        exemption.exempts,
        reason=f"restored: {', '.join(exemption.partners)} exempted from order {order.order_id}",
        at=request.at,
        why=f"exempted from order {order.order_id}",
    )
    result = ExemptOrderResult(order=updated, restored=restored)
    records.remember(
        connection, key, "exempt_order", digest, result.model_dump(mode="json"), request.at
    )
    return result


def _release_grants(
    connection: Connection,
    order_id: str,
    wanted: Callable[[str, str], bool],
    *,
    reason: str,
    at: datetime,
    why: str,
) -> tuple[list[str], list[str]]:
    """Restore the grants ``order_id`` suspended for which ``wanted(partner, model)`` holds,
    unless another active order covers them (they then stay suspended, by it). Call it after the
    order's row no longer covers them. Returns the restored and the still suspended grant ids."""
    orders = records.active_orders(connection)
    restored: list[str] = []
    kept: dict[str, list[str]] = {}
    for grant in _grants_of(connection, [ALL_MODELS], status="suspended"):
        if grant.order_id != order_id or not wanted(grant.id, grant.model_name):
            continue
        partner = records.partner_facts(grant)
        still = next(
            (o for o in orders if order_covers_partner(o, partner, grant.model_name)), None
        )
        if still is None:
            restored.append(grant.grant_id)
        else:
            kept.setdefault(still.order_id, []).append(grant.grant_id)
    _set_status(connection, restored, status="active", order_id=order_id, reason=reason, at=at)
    for other, ids in kept.items():
        text = f"{why}; still suspended by order {other}"
        _set_status(connection, ids, status="suspended", order_id=other, reason=text, at=at)
    return restored, [g for ids in kept.values() for g in ids]


def _grants_of(
    connection: Connection, models: Sequence[str], *, status: str
) -> list[records.AnyRow]:
    """Grants in ``status`` for ``models`` (or all), with their partner's current facts."""
    query = (
        sa.select(
            grants.c.grant_id,
            grants.c.model_name,
            grants.c.order_id,
            partners.c.id,
            partners.c.tier,
            partners.c.jurisdiction,
        )
        .join(partners, partners.c.id == grants.c.partner_id)
        .where(grants.c.status == status)
        .order_by(grants.c.granted_at, grants.c.grant_id)
    )
    if ALL_MODELS not in models:
        query = query.where(grants.c.model_name.in_(models))
    return list(connection.execute(query))


def _releases_with_grants(connection: Connection, models: Sequence[str]) -> list[str]:
    query = sa.select(grants.c.release_id).distinct().where(grants.c.status != "revoked")
    if ALL_MODELS not in models:
        query = query.where(grants.c.model_name.in_(models))
    return sorted(connection.execute(query).scalars())


def _set_status(
    connection: Connection,
    grant_ids: list[str],
    *,
    status: str,
    order_id: str,
    reason: str,
    at: datetime,
) -> None:
    for ids in records.chunks(grant_ids):
        connection.execute(
            sa.update(grants)
            .where(grants.c.grant_id.in_(ids))
            .values(status=status, order_id=order_id, reason=reason, changed_at=at)
        )


def _active_order(connection: Connection, order_id: str, *, lifted: str) -> AccessOrder:
    """The order, refused (not retryable) when it does not exist or was already lifted."""
    row = connection.execute(
        sa.select(access_orders).where(access_orders.c.order_id == order_id)
    ).first()
    if row is None:
        raise RegistryError(f"no access order {order_id}", retryable=False)
    order = records.order_model(row)
    if order.status == "lifted":
        raise RegistryError(lifted, retryable=False)
    return order

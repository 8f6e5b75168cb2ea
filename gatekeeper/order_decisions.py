"""What an access order decides, without Temporal: who may act on it, whether an exemption or
a lift is admissible, what each release is sent, and what operators see.

:class:`~workflows.access_order.AccessOrderWorkflow` is the shell: it calls activities, waits
and answers updates, and asks these functions every question that has an answer in the order's
status alone. Each is deterministic and free of I/O (the workflow uses them in its sandbox, in
validators and handlers alike); a refusal is a one-line :class:`~gatekeeper.failures.Refused`
typed by its rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from gatekeeper.failures import Refused
from gatekeeper.models.base import MAX_TEXT
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from gatekeeper.models.orders import (
    ALL_MODELS,
    MAX_EXEMPTIONS,
    AffectedRelease,
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderStatus,
    ReleaseAck,
    ReleaseUpdate,
    covers_model,
    order_actor,
)
from gatekeeper.models.policy import Policy

#: The policy role whose holders may exempt from and lift access orders.
ORDER_OFFICER_ROLE = "export_control_officer"
#: Release outcomes an order still owes an update to (an unanswered one may yet arrive).
REACHED = ("acknowledged", "unanswered")


def reason(text: str, reference: str) -> str:
    """A reason as releases and the registry record it: with its reference, bounded."""
    full = f"{text} ({reference})" if reference else text
    return full[:MAX_TEXT]


def officers(policy: Policy) -> list[str]:
    """Who may exempt and lift under ``policy``: the holders of the officer role, sorted."""
    return sorted(p.id for p in policy.roster if ORDER_OFFICER_ROLE in p.roles)


def authorise(status: OrderStatus, update: str, by: str) -> None:
    """Refuse ``by`` unless they are one of the order's officers (an order applied before
    officers were pinned, ``officers is None``, admits anyone)."""
    allowed = status.officers
    if allowed is not None and by not in allowed:
        raise Refused(
            f"{by} may not {update} order {status.order.order_id}: only the "
            f"{ORDER_OFFICER_ROLE} role may ({', '.join(allowed) or 'nobody holds it'})",
            "not_authorised",
        )


def check_exempt(status: OrderStatus, req: OrderExemptionRequest) -> None:
    """Refuse an exemption the order cannot take (who, its state, its models, its budget, or
    one that changes nothing)."""
    order = status.order
    authorise(status, "exempt", req.by)
    if status.state in ("lifting", "lifted", "failed"):
        raise Refused(
            f"order {order.order_id} is {status.state}; it takes no exemptions", "order_lifted"
        )
    outside = [m for m in req.models if not covers_model(order.models, m)]
    if outside:
        raise Refused(
            f"order {order.order_id} does not name {', '.join(outside)} "
            f"(it names {', '.join(order.models)})",
            "unknown_model",
        )
    if len(status.exemptions) >= MAX_EXEMPTIONS:
        raise Refused(
            f"order {order.order_id} already has {MAX_EXEMPTIONS} exemptions; "
            "issue a new order instead",
            "request_budget_exhausted",
        )
    models = req.models or [ALL_MODELS]
    if all(set(req.partners) <= set(status.exempt_for(m)) for m in models):
        raise Refused(
            f"{', '.join(req.partners[:3])} already exempt from order "
            f"{order.order_id} for {', '.join(models)}",
            "unchanged",
        )


def check_lift(status: OrderStatus, req: OrderLiftRequest) -> None:
    """Refuse a lift by someone not an officer, of an order already lifting or lifted, or
    without every safeguard the order requires."""
    order = status.order
    authorise(status, "lift", req.by)
    if status.state in ("lifting", "lifted", "failed"):
        raise Refused(f"order {order.order_id} is already {status.state}", "order_lifted")
    missing = [s for s in order.required_safeguards if s not in req.safeguards]
    if missing:
        raise Refused(
            f"order {order.order_id} can only be lifted once these safeguards are "
            f"attested: {', '.join(missing)}",
            "safeguards_missing",
        )


def exempted(req: OrderExemptionRequest, models: list[str]) -> str:
    """An exemption's one-line answer."""
    more = f" and {len(req.partners) - 3} more" if len(req.partners) > 3 else ""
    return f"exempted {', '.join(req.partners[:3])}{more} for {', '.join(models)}"


# --- what each release is sent --------------------------------------------------------------


def suspension(status: OrderStatus, model: str) -> AccessSuspensionRequest:
    """The ``suspend_access`` a release of ``model`` gets, with the partners exempt for it."""
    order = status.order
    return AccessSuspensionRequest(
        order_id=order.order_id,
        by=order_actor(order.order_id),
        scope=order.scope.removeprefix("jurisdiction:"),
        exempt_partners=status.exempt_for(model),
        reason=reason(order.reason, order.reference),
    )


def restoration(status: OrderStatus, req: OrderLiftRequest) -> AccessRestoreRequest:
    """The ``restore_access`` every reached release gets once the order is lifted."""
    order = status.order
    return AccessRestoreRequest(
        order_id=order.order_id,
        by=order_actor(order.order_id),
        safeguards=req.safeguards,
        reason=f"order lifted by {req.by}: {reason(req.reason, req.reference)}",
    )


def unanswered(status: OrderStatus) -> list[ReleaseAck]:
    """The releases whose latest update has not been answered."""
    return [a for a in status.releases.values() if a.outcome == "unanswered"]


def resend(
    status: OrderStatus, ack: ReleaseAck, restore: AccessRestoreRequest | None
) -> ReleaseUpdate:
    """The update to send again to a release that did not answer: its restore once lifted,
    else its suspension (with today's exemptions)."""
    if ack.update == "restore_access" and restore is not None:
        return ReleaseUpdate(release_id=ack.release_id, model=ack.model, restore=restore)
    return ReleaseUpdate(
        release_id=ack.release_id, model=ack.model, suspend=suspension(status, ack.model)
    )


def sweep_models(status: OrderStatus, models: list[str] | None) -> list[str]:
    """The models a sweep looks for: the order's, or those of ``models`` (an exemption's, where
    ``*`` means every model of the order) that the order names."""
    if models is None or ALL_MODELS in models:
        return list(status.order.models)
    return [m for m in models if covers_model(status.order.models, m)]


def newly_found(
    status: OrderStatus, found: Iterable[AffectedRelease], models: list[str] | None = None
) -> list[ReleaseUpdate]:
    """Suspensions for the running releases (of ``models``, default the order's) a sweep found
    that the order has not reached."""
    wanted = status.order.models if models is None else models
    return [
        ReleaseUpdate(release_id=r.release_id, model=r.model, suspend=suspension(status, r.model))
        for r in found
        if r.release_id not in status.releases and covers_model(wanted, r.model)
    ]


def after_exemption(status: OrderStatus, models: list[str]) -> list[ReleaseUpdate]:
    """Suspended releases of the exempted ``models``, sent their suspension again with the new
    exempt list."""
    return [
        ReleaseUpdate(
            release_id=ack.release_id, model=ack.model, suspend=suspension(status, ack.model)
        )
        for ack in status.releases.values()
        if ack.outcome in REACHED
        and ack.update == "suspend_access"
        and covers_model(models, ack.model)
    ]


def after_lift(status: OrderStatus, restore: AccessRestoreRequest) -> list[ReleaseUpdate]:
    """Every reached release, restored (an unanswered suspension may yet be delivered)."""
    return [
        ReleaseUpdate(release_id=ack.release_id, model=ack.model, restore=restore)
        for ack in status.releases.values()
        if ack.outcome in REACHED
    ]


def lift_sweep(
    status: OrderStatus, found: Iterable[AffectedRelease], restore: AccessRestoreRequest
) -> list[ReleaseUpdate]:
    """Restores for the running releases of the order's models that the lift's sweep found and
    the order never reached: releases started after its sweeps, which may have found the order
    in the registry themselves (one that did not answers ``not_suspended``)."""
    return [
        ReleaseUpdate(release_id=r.release_id, model=r.model, restore=restore)
        for r in found
        if r.release_id not in status.releases and covers_model(status.order.models, r.model)
    ]


# --- what operators see -----------------------------------------------------------------------


def effect(scope: str) -> str:
    """What an order of ``scope`` does to the releases it reaches (``gatekeeper.ledger.suspensions``)."""
    if scope == "foreign_persons":
        return "enforced per person by access checks; releases go on granting and launching"
    return "releases suspended until the lift"


def details(status: OrderStatus) -> str:
    """The order's current details (Markdown) for the Temporal UI."""
    order = status.order
    counts = status.counts()
    lines = [
        f"**Access order {order.order_id}** — {status.state}",
        "",
        f"- Models: {', '.join(order.models)}; scope: {order.scope} ({effect(order.scope)})",
        f"- Exempt: {', '.join(status.exempt_for(ALL_MODELS)) or 'nobody'}"
        + (f" (+{len(status.exemptions)} exemption(s))" if status.exemptions else ""),
        f"- Releases: {len(status.releases)} — "
        + ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n),
        f"- Registry grants suspended: {status.grants_suspended}; "
        f"restored: {status.grants_restored}",
    ]
    if order.required_safeguards:
        lines.append(f"- Lift requires: {', '.join(order.required_safeguards)}")
    return "\n".join(lines)

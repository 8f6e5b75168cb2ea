"""Access activities: grant and revoke partner access for a release (and list who is eligible);
apply, exempt from and lift access orders.

Each is synchronous (the registry is a blocking SQL client), so the worker runs them on its
activity thread pool. Every call is idempotent: grants and revokes by their idempotency key,
orders by their order id, so a retried attempt returns what the first one did.
"""

from __future__ import annotations

from temporalio import activity

from activities._errors import activity_errors
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.errors import InputError
from gatekeeper.models.base import MAX_TEXT
from gatekeeper.models.io import (
    MAX_ORDERS_FOUND,
    GrantRequest,
    GrantResult,
    OrderFound,
    OrdersInForce,
    OrdersInForceRequest,
    RevokeRequest,
    RevokeResult,
)
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from gatekeeper.models.orders import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    ExemptOrderRequest,
    ExemptOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
    order_actor,
)
from gatekeeper.models.partners import EligiblePartners, EligiblePartnersRequest


class AccessActivities:
    """Access activities, bound to the worker's :class:`AccessRegistry`."""

    def __init__(self, registry: AccessRegistry) -> None:
        self._registry = registry

    @activity.defn(name="grant_partner_access")
    def grant_partner_access(self, request: GrantRequest) -> GrantResult:
        """Grant every partner the requested cohorts admit, on each requested surface."""
        with activity_errors():
            request = GrantRequest.model_validate(request)
            if not request.surfaces:
                raise InputError(f"grant {request.idempotency_key} names no surface")
            result = self._registry.grant_for_cohorts(request)
        activity.logger.info(
            "release %s: %d grants, %d partners skipped",
            request.release_id,
            len(result.grants),
            len(result.skipped),
        )
        # The registry keeps every grant; history gets counts, a digest and the first few.
        return result.compacted()

    @activity.defn(name="list_eligible_partners")
    def list_eligible_partners(self, request: EligiblePartnersRequest) -> EligiblePartners:
        """The partners the release's cohorts admit, to propose to the government; grants none."""
        with activity_errors():
            request = EligiblePartnersRequest.model_validate(request)
            result = self._registry.eligible_partners(request)
        activity.logger.info(
            "release %s: %d partners eligible", request.release_id, len(result.candidates)
        )
        return result

    @activity.defn(name="revoke_partner_access")
    def revoke_partner_access(self, request: RevokeRequest) -> RevokeResult:
        """Revoke the named grants of a release, or all of them when none are named."""
        with activity_errors():
            request = RevokeRequest.model_validate(request)
            result = self._registry.revoke(request)
        activity.logger.info(
            "release %s: %d grants revoked", request.release_id, len(result.revoked)
        )
        return result.compacted()

    @activity.defn(name="find_orders_in_force")
    def find_orders_in_force(self, request: OrdersInForceRequest) -> OrdersInForce:
        """The active orders covering the release's model, read-only: what each would have sent
        the release, so a release started after an order's sweeps records it itself; and, for
        the orders the release names, the restore their lift would have sent."""
        with activity_errors():
            request = OrdersInForceRequest.model_validate(request)
            orders = self._registry.orders_for_model(request.model, request.recheck)
        found = [_found(order, request.model) for order in orders[:MAX_ORDERS_FOUND]]
        activity.logger.info(
            "release %s: %d order(s) cover %s",
            request.release_id,
            sum(1 for f in found if f.lifted is None),
            request.model,
        )
        return OrdersInForce(orders=found)

    @activity.defn(name="apply_access_order")
    def apply_access_order(self, request: ApplyOrderRequest) -> ApplyOrderResult:
        """Record an access order and suspend the grants it covers organisation-wide."""
        with activity_errors():
            request = ApplyOrderRequest.model_validate(request)
            result = self._registry.apply_order(request)
        activity.logger.info(
            "order %s: %d grants suspended, %d releases affected",
            request.order_id,
            len(result.suspended),
            len(result.affected_releases),
        )
        return result

    @activity.defn(name="exempt_access_order")
    def exempt_access_order(self, request: ExemptOrderRequest) -> ExemptOrderResult:
        """Exempt partners from an active order and restore the grants it suspended for them."""
        with activity_errors():
            request = ExemptOrderRequest.model_validate(request)
            result = self._registry.exempt_order(request)
        activity.logger.info(
            "order %s: %s exempted, %d grants restored",
            request.order_id,
            ", ".join(request.partners),
            len(result.restored),
        )
        return result

    @activity.defn(name="lift_access_order")
    def lift_access_order(self, request: LiftOrderRequest) -> LiftOrderResult:
        """Lift an access order and restore the grants no other active order covers."""
        with activity_errors():
            request = LiftOrderRequest.model_validate(request)
            result = self._registry.lift_order(request)
        activity.logger.info(
            "order %s lifted: %d grants restored, %d still suspended",
            request.order_id,
            len(result.restored),
            len(result.still_suspended),
        )
        return result


def _found(order: AccessOrder, model: str) -> OrderFound:
    """``order`` as a release of ``model`` records it (``gatekeeper.order_decisions`` builds the
    same requests for the updates an order sends)."""
    actor = order_actor(order.order_id)
    suspend = AccessSuspensionRequest(
        order_id=order.order_id,
        by=actor,
        scope=order.scope.removeprefix("jurisdiction:"),
        exempt_partners=order.exempt_for(model),
        reason=order.reason or f"access order {order.order_id}",
    )
    lifted = None
    if order.status == "lifted":
        lifted = AccessRestoreRequest(
            order_id=order.order_id,
            by=actor,
            safeguards=order.safeguards,
            reason=(
                f"order lifted by {order.lifted_by or 'an officer'}: "
                f"{order.lift_reason or 'no reason given'}"
            )[:MAX_TEXT],
        )
    return OrderFound(suspend=suspend, lifted=lifted)

"""A workflow that renders with the real view modules, imported here *without* pass-through so
the sandbox re-imports and checks them (see test_view_in_sandbox.py)."""

from __future__ import annotations

from temporalio import workflow

from gatekeeper import order_decisions
from gatekeeper.models.orders import OrderStatus
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.status_details import current_details
from gatekeeper.status_view import view


@workflow.defn(name="RenderInSandbox", sandboxed=True)
class RenderInSandbox:
    """Renders a release's and an order's status inside the sandbox."""

    @workflow.run
    async def run(self, release: ReleaseStatus, order: OrderStatus) -> list[str]:
        return [
            current_details(release),
            str(view(release).finished),
            order_decisions.details(order),
        ]

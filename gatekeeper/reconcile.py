"""Grant reconciliation: no partner grant outlives a release that ended without launching.

A release revokes its own grants when it is rejected or withdrawn. It cannot when its workflow
stops some other way: terminated by an operator (``temporal workflow terminate``) or by Temporal
(history limits), failed with a non-retryable error, timed out, or deleted. The reconciler
closes that gap from outside: it lists the releases that still hold unrevoked grants in the
registry, asks Temporal about each release's workflow, and revokes every grant of a release whose
workflow is closed without the release having launched (its ``ReleaseState`` search attribute is
not ``launched``) or no longer exists.

It runs once when a worker starts and then every ``GATEKEEPER_RECONCILE_EVERY`` seconds in each
worker (revoking is idempotent), and on demand with ``gatekeeper ops reconcile-grants``. One
registry serves one Temporal namespace: a release unknown to the namespace counts as ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import Event
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from gatekeeper import search_attributes as sa
from gatekeeper.ids import release_workflow_id
from gatekeeper.models.enums import ReleaseState
from gatekeeper.models.io import RevokeRequest
from gatekeeper.temporal_errors import not_found

if TYPE_CHECKING:
    from gatekeeper.adapters.registry import AccessRegistry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reconciled:
    """One release whose grants were revoked because its workflow ended without a launch."""

    release_id: str
    workflow_status: str
    release_state: str
    revoked: int

    def describe(self) -> str:
        state = f", release {self.release_state}" if self.release_state else ""
        return (
            f"{self.release_id}: workflow {self.workflow_status}{state}; "
            f"{self.revoked} grant(s) revoked"
        )


async def ended_without_launch(client: Client, release_id: str) -> tuple[str, str] | None:
    """(workflow status, release state) if the release's workflow is closed and the release did
    not launch; None while it runs, or once it launched."""
    handle = client.get_workflow_handle(release_workflow_id(release_id))
    try:
        description = await handle.describe()
    except RPCError as err:
        if not_found(err):
            return "not_found", ""
        raise
    status = description.status
    if status is None or status is WorkflowExecutionStatus.RUNNING:
        return None
    state = description.typed_search_attributes.get(sa.RELEASE_STATE) or ""
    if state == ReleaseState.LAUNCHED.value:
        return None
    return status.name.lower(), state


async def reconcile_grants(
    client: Client, registry: AccessRegistry, *, now: datetime | None = None
) -> list[Reconciled]:
    """Revoke the grants of every release whose workflow ended without launching."""
    at = now or datetime.now(UTC)
    held = await asyncio.to_thread(registry.releases_holding_grants)
    done: list[Reconciled] = []
    for release_id in held:
        ended = await ended_without_launch(client, release_id)
        if ended is None:
            continue
        status, state = ended
        reason = f"release workflow {status} without launching (grants reconciled)"
        request = RevokeRequest(
            idempotency_key=f"{release_id}:reconcile:{at.isoformat()}",
            release_id=release_id,
            grant_ids=[],
            reason=reason,
            requested_at=at,
        )
        result = await asyncio.to_thread(registry.revoke, request)
        done.append(Reconciled(release_id, status, state, result.count))
    return done


async def reconcile_forever(client: Client, registry_url: str, every: float, stop: Event) -> None:
    """Reconcile now, then every ``every`` seconds until ``stop`` is set (a worker's loop).
    A failed round (registry or server unreachable) is logged and tried again next time; it
    never stops the worker."""
    from gatekeeper.adapters.registry import AccessRegistry

    registry: AccessRegistry | None = None
    try:
        while not stop.is_set():
            try:
                if registry is None:
                    registry = await asyncio.to_thread(AccessRegistry, registry_url)
                for item in await reconcile_grants(client, registry):
                    log.warning("grants reconciled", detail=item.describe())
            except Exception as err:  # logged; the next round tries again
                log.warning("grant reconciliation failed", error=f"{type(err).__name__}: {err}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        if registry is not None:
            registry.close()

"""Access orders from the client side: order files, and applying, exempting, lifting and reading
orders (each an ``AccessOrderWorkflow``, id ``access-order-<order_id>``).

Also what the order's activities use to reach releases: the visibility query that finds the
running releases of the order's models, and one ``suspend_access``/``restore_access`` update with
its answer classified. Temporal client errors become Gatekeeper errors here, at one boundary.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from gatekeeper import search_attributes as sa
from gatekeeper.errors import (
    DecisionRefused,
    GatekeeperError,
    OrderExists,
    OrderFileError,
    OrderNotFound,
)
from gatekeeper.ids import order_id_of, order_workflow_id, release_id_of, release_workflow_id
from gatekeeper.models.orders import (
    ALL_MODELS,
    AccessOrderInput,
    AffectedRelease,
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderSpec,
    OrderStatus,
    OrderUpdateResult,
    ReleaseAck,
    ReleaseUpdate,
)
from gatekeeper.models.status import ReleaseStatus, UpdateResult
from gatekeeper.release_list import WORKFLOW_TYPE as RELEASE_WORKFLOW_TYPE
from gatekeeper.release_list import quote_literal
from gatekeeper.releases import QUERY_TIMEOUT
from gatekeeper.signed_requests import order_binding, release_binding
from gatekeeper.signer import Signer, request_body
from gatekeeper.statements import sign_request
from gatekeeper.temporal_errors import (
    not_found,
    refusal,
    refused_because,
    service_error,
    workflow_error,
)
from gatekeeper.yamlcheck import validate_model
from gatekeeper.yamlfile import read_yaml_file

ORDER_WORKFLOW_TYPE = "AccessOrderWorkflow"
#: How often ``apply`` looks whether the order has reached every release.
POLL_SECONDS = 0.1


# --- files ------------------------------------------------------------------------------------


def load_order_spec(path: str | Path) -> OrderSpec:
    """Read an order file (see ``examples/orders/``).

    Raises:
        OrderFileError: with every problem, located by field path and line.
    """
    document = read_yaml_file(path, error=OrderFileError)
    return validate_model(document, OrderSpec, source=str(path), error=OrderFileError)


def load_exemption(path: str | Path) -> OrderExemptionRequest:
    """Read an exemption file (``by``, ``partners``, ``models``, ``reason``, ``reference``)."""
    document = read_yaml_file(path, error=OrderFileError)
    return validate_model(document, OrderExemptionRequest, source=str(path), error=OrderFileError)


def load_lift(path: str | Path) -> OrderLiftRequest:
    """Read a lift file (``by``, ``safeguards``, ``reason``, ``reference``)."""
    document = read_yaml_file(path, error=OrderFileError)
    return validate_model(document, OrderLiftRequest, source=str(path), error=OrderFileError)


# --- finding and updating the releases an order affects --------------------------------------


def affected_query(models: list[str]) -> str:
    """The visibility query for the running releases of ``models`` (``["*"]``: every model).

    Model names are validated identifiers, so quoting them needs no escaping.
    """
    clauses = [
        f"WorkflowType = '{RELEASE_WORKFLOW_TYPE}'",
        "ExecutionStatus = 'Running'",
    ]
    if ALL_MODELS not in models:
        names = ", ".join(f"'{m}'" for m in models)
        clauses.append(f"{sa.MODEL_NAME.name} IN ({names})")
    return " AND ".join(clauses)


def releases_of_query(model: str) -> str:
    """The visibility query for every release of ``model``, running or finished."""
    return f"WorkflowType = '{RELEASE_WORKFLOW_TYPE}' AND {sa.MODEL_NAME.name} = '{model}'"


async def models_without_releases(client: Client, models: list[str]) -> list[str]:
    """The models of ``models`` (``*`` aside) that no release was started for, as far as
    visibility remembers (finished releases drop out after the namespace's retention, so the
    caller also asks the registry for public launches)."""
    unused: list[str] = []
    for model in models:
        if model == ALL_MODELS:
            continue
        try:
            counted = await client.count_workflows(releases_of_query(model))
        except RPCError as err:
            raise service_error(err, "count the releases of the order's models") from err
        if counted.count == 0:
            unused.append(model)
    return unused


async def find_running_releases(client: Client, models: list[str]) -> list[AffectedRelease]:
    """Every running release of ``models``, by release id."""
    found: dict[str, AffectedRelease] = {}
    async for execution in client.list_workflows(affected_query(models)):
        release_id = release_id_of(execution.id)
        model = execution.typed_search_attributes.get(sa.MODEL_NAME) or ""
        if model:
            found[release_id] = AffectedRelease(release_id=release_id, model=model)
    return [found[key] for key in sorted(found)]


async def send_release_update(
    client: Client, update: ReleaseUpdate, key: Ed25519PrivateKey | None = None
) -> ReleaseAck:
    """Send one ``suspend_access``/``restore_access`` and classify the answer.

    ``key`` is the worker's own key: the order's update, relayed by the worker, is signed with
    it over the release's current binding (releases accept requests of ``access-order-*`` only
    when a worker's registered key signed them).

    A release that accepted answers ``acknowledged`` (with its state and stage); one that has
    ended meanwhile ``ended``; one that refused ``refused`` (with the rule). Anything else (the
    server unreachable, a timeout) raises, so the caller retries.
    """
    handle = client.get_workflow_handle(release_workflow_id(update.release_id))
    request = update.suspend if update.suspend is not None else update.restore
    ack = ReleaseAck(release_id=update.release_id, model=update.model, update=update.name)
    payload: Any = request
    try:
        if key is not None and request is not None:
            status = await handle.query("get_status", result_type=ReleaseStatus)
            body = request_body(request)
            payload = sign_request(
                key,
                action=update.name,
                actor=request.by,
                request=body,
                binding=release_binding(status),
            )
        result = await handle.execute_update(update.name, payload, result_type=UpdateResult)
    except WorkflowUpdateFailedError as err:
        message, rule = refused_because(err)
        if rule == "unchanged":  # a re-delivery: the release already has this order's change
            return await _already_applied(handle, ack, message)
        outcome = "ended" if rule == "release_terminal" else "refused"
        if rule == "unknown_order" and update.restore is not None:
            # A release the lift's sweep found that never held the order: nothing to restore.
            outcome = "not_suspended"
        return ack.model_copy(
            update={"outcome": outcome, "detail": f"{rule}: {message}", "at": _now()}
        )
    except WorkflowQueryFailedError as err:
        # Still starting (its ledger does not exist yet): sent again with the next round.
        return ack.model_copy(
            update={"outcome": "unanswered", "detail": f"no status yet: {err}", "at": _now()}
        )
    except RPCError as err:
        if not_found(err):
            return ack.model_copy(
                update={"outcome": "ended", "detail": "the release has ended", "at": _now()}
            )
        raise
    return ack.model_copy(
        update={
            "outcome": "acknowledged",
            "state": result.state.value,
            "stage": result.stage or "",
            "detail": result.message,
            "at": _now(),
        }
    )


async def _already_applied(
    handle: WorkflowHandle[Any, Any], ack: ReleaseAck, message: str
) -> ReleaseAck:
    status = await handle.query("get_status", result_type=ReleaseStatus)
    return ack.model_copy(
        update={
            "outcome": "acknowledged",
            "state": status.state.value,
            "stage": status.stage or "",
            "detail": message,
            "at": _now(),
        }
    )


def _now() -> datetime:
    return datetime.now(UTC)


# --- the client-side API ----------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSummary:
    """One row of ``access order list``: what visibility knows without asking the workflow."""

    order_id: str
    execution_status: str
    started_at: datetime | None
    closed_at: datetime | None


class Orders:
    """Apply, exempt, lift and read access orders through a Temporal client."""

    def __init__(self, client: Client, task_queue: str, *, signer: Signer | None = None) -> None:
        """``signer`` signs ``exempt`` and ``lift`` with the key of the person each names."""
        self.client = client
        self.task_queue = task_queue
        self.signer = signer

    def handle(self, order_id: str) -> WorkflowHandle[Any, OrderStatus]:
        return self.client.get_workflow_handle(order_workflow_id(order_id), result_type=OrderStatus)

    async def apply(
        self, spec: OrderSpec, by: str, *, wait: bool = True, within: float = 600.0
    ) -> OrderStatus:
        """Start the order; with ``wait``, return once every affected release has answered.

        Raises:
            OrderExists: the order id was used before.
            GatekeeperError: the order did not reach every release within ``within`` seconds.
        """
        order: Any = AccessOrderInput(**spec.model_dump(), issued_by=by)
        if self.signer is not None:
            # The order does not exist yet: its start binds the order id alone (never reused).
            order = self.signer.sign("apply_order", order, order_binding(spec.order_id))
        try:
            handle = await self.client.start_workflow(
                ORDER_WORKFLOW_TYPE,
                order,
                id=order_workflow_id(spec.order_id),
                task_queue=self.task_queue,
                result_type=OrderStatus,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                static_summary=(
                    f"Access order {spec.order_id}: {', '.join(spec.models)} · {spec.scope}"
                ),
            )
        except WorkflowAlreadyStartedError as err:
            raise OrderExists(
                f"access order {spec.order_id} was already applied; order ids are never reused "
                f"(see `gatekeeper access order status {spec.order_id}`)"
            ) from err
        if not wait:
            return await self._query(handle, spec.order_id)
        return await self.wait_applied(spec.order_id, within=within)

    async def wait_applied(self, order_id: str, *, within: float = 600.0) -> OrderStatus:
        """The order's status once it has left ``applying``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            status = await self.status(order_id)
            if status.state != "applying":
                return status
            if loop.time() > deadline:
                counts = status.counts()
                raise GatekeeperError(
                    f"access order {order_id} is still being applied after {within:g} s "
                    f"({counts['pending']} releases pending); it goes on by itself"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def exempt(self, order_id: str, request: OrderExemptionRequest) -> OrderStatus:
        """Exempt partners; the update answers in one line, so the order is queried after."""
        await self._update(order_id, "exempt", request, result_type=OrderUpdateResult)
        return await self.status(order_id)

    async def lift(self, order_id: str, request: OrderLiftRequest) -> OrderStatus:
        status: OrderStatus = await self._update(order_id, "lift", request)
        return status

    async def status(self, order_id: str) -> OrderStatus:
        return await self._query(self.handle(order_id), order_id)

    async def list(self, *, limit: int = 100) -> list[OrderSummary]:
        rows: list[OrderSummary] = []
        async for execution in self._iterate(limit):
            rows.append(_summary(execution))
        return rows

    async def _iterate(self, limit: int) -> AsyncIterator[WorkflowExecution]:
        # Only this installation's orders (its task queue): an order another worker set runs on
        # its own queue, and a query to it would wait for a worker that is not ours.
        count = 0
        async for execution in self.client.list_workflows(
            f"WorkflowType = '{ORDER_WORKFLOW_TYPE}' AND TaskQueue = {quote_literal(self.task_queue)}"
        ):
            yield execution
            count += 1
            if count >= limit:
                return

    async def _query(self, handle: WorkflowHandle[Any, Any], order_id: str) -> OrderStatus:
        try:
            status: OrderStatus = await handle.query(
                "get_status", result_type=OrderStatus, rpc_timeout=QUERY_TIMEOUT
            )
        except RPCError as err:
            raise self._rpc_error(order_id, err) from err
        return status

    async def _update(
        self, order_id: str, name: str, request: Any, *, result_type: type[Any] = OrderStatus
    ) -> Any:
        if self.signer is not None:
            status = await self.status(order_id)
            request = self.signer.sign(name, request, order_binding(order_id, status.first_run_id))
        try:
            result = await self.handle(order_id).execute_update(
                name, request, result_type=result_type
            )
        except WorkflowUpdateFailedError as err:
            raise refusal(err) from err
        except RPCError as err:
            raise self._rpc_error(order_id, err) from err
        return result

    def _rpc_error(self, order_id: str, err: RPCError) -> GatekeeperError:
        return workflow_error(
            err,
            what=f"access order {order_id}",
            ended=DecisionRefused(
                f"access order {order_id} was lifted; it accepts no further changes",
                rule="order_lifted",
            ),
            missing=OrderNotFound(f"no access order '{order_id}'"),
        )


def _summary(execution: WorkflowExecution) -> OrderSummary:
    return OrderSummary(
        order_id=order_id_of(execution.id),
        execution_status=execution.status.name.lower() if execution.status else "unknown",
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )

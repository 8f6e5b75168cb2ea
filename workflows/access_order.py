"""AccessOrderWorkflow: one export-control style order across every release it names.

Workflow id ``access-order-<order_id>``. Applying is fast and fails closed: the registry change
comes first (so in-process access checks deny at once, for launched models too), then a
visibility query finds the running releases of the order's models and each gets
``suspend_access``, in concurrent batches; every answer is recorded. A second query catches
releases started while the first batch went out. The order then waits for ``exempt`` (named
partners regain access, for some or all models) and ``lift`` (refused unless every required
safeguard is attested); after the lift each suspended release gets ``restore_access`` and the
workflow completes. ``get_status`` shows the counts and every release's latest answer.

Every decision with an answer in the order's status alone (who may act, whether an exemption or
lift is admissible, what each release is sent, the details operators see) is made by
:mod:`gatekeeper.order_decisions`; this module is the Temporal shell around it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    import cryptography.exceptions  # noqa: F401  (see workflows/release.py)

    import gatekeeper.webauthn  # noqa: F401  (holds cryptography's ECDSA: see workflows/release.py)
    from gatekeeper import order_decisions as decide
    from gatekeeper import signed_requests
    from gatekeeper.errors import BadInput
    from gatekeeper.failures import Refused, cause_message
    from gatekeeper.identity import authority
    from gatekeeper.models.base import Model
    from gatekeeper.models.installed import InstalledPolicy, ResolvePolicyRequest
    from gatekeeper.models.messages import AccessRestoreRequest
    from gatekeeper.models.orders import (
        ALL_MODELS,
        AccessOrderInput,
        AffectedReleases,
        AffectedReleasesRequest,
        ApplyOrderRequest,
        ApplyOrderResult,
        ExemptOrderRequest,
        ExemptOrderResult,
        LiftOrderRequest,
        LiftOrderResult,
        OrderExemption,
        OrderExemptionRequest,
        OrderLiftRequest,
        OrderStatus,
        OrderUpdateResult,
        ReleaseAck,
        ReleaseUpdate,
        ReleaseUpdateBatch,
        ReleaseUpdateResult,
        SignedRequestCheck,
    )
    from gatekeeper.models.payloads import BAD_INPUT, NO_ARGUMENT, parse_payload
    from gatekeeper.models.policy import DEFAULT_SIGNATURE_MAX_AGE
    from gatekeeper.rules import Refusal
    from workflows import timeouts

#: ``workflow.patched`` id: orders resolve their officers (and signature age) at apply time.
OFFICERS_PATCH = "order-officers"
#: ``workflow.patched`` id (issue 14): an exemption's sweep looks only for releases of the models
#: it names, so it changes nothing for the releases of the order's other models. Exemptions
#: accepted before it swept every model of the order, as their histories replay.
EXEMPTION_SCOPE_PATCH = "exemption-sweeps-its-models"
#: ``workflow.patched`` id (issue 14): after restoring the releases it reached, the lift looks
#: again for running releases of its models and sends ``restore_access`` to each it never
#: reached (a release started after the order's sweeps holds the order when it found it in the
#: registry itself; one that did not is counted ``not_suspended``). Lifts before it restored only
#: the releases the order reached, as their histories replay.
LIFT_SWEEP_PATCH = "lift-sweeps-late-releases"


M = TypeVar("M", bound=Model)


def _parse(update: str, model: type[M], payload: RawValue) -> M:
    try:
        return parse_payload(model, payload, update)
    except BadInput as err:
        raise Refused(str(err), BAD_INPUT) from None


@workflow.defn(name="AccessOrderWorkflow")
class AccessOrderWorkflow:
    """Suspend access to models across running releases and the registry; exempt; lift."""

    @workflow.init
    def __init__(self, order: AccessOrderInput) -> None:
        self._status = OrderStatus(
            order=order,
            issued_at=workflow.now(),
            first_run_id=workflow.info().first_execution_run_id,
        )
        self._max_age = DEFAULT_SIGNATURE_MAX_AGE
        #: Nonces of the signed requests this order accepted (a replay is refused).
        self._nonces: set[str] = set()
        # Exemptions and the lift each touch every release; one at a time keeps them ordered.
        self._lock = asyncio.Lock()
        self._details = ""
        self._restore: AccessRestoreRequest | None = None

    @workflow.run
    async def run(self, order: AccessOrderInput) -> OrderStatus:
        status = self._status
        async with self._lock:
            if workflow.patched(OFFICERS_PATCH):
                await self._resolve_officers()
                await self._check_start(order)
            try:
                applied = await workflow.execute_activity(
                    "apply_access_order",
                    ApplyOrderRequest(
                        order_id=order.order_id,
                        models=order.models,
                        scope=order.scope,
                        exempt_partners=order.exempt_partners,
                        required_safeguards=order.required_safeguards,
                        reason=decide.reason(order.reason, order.reference),
                        issued_by=order.issued_by,
                        issued_at=status.issued_at,
                    ),
                    result_type=ApplyOrderResult,
                    start_to_close_timeout=timeouts.ACCESS_TIMEOUT,
                    retry_policy=timeouts.ACCESS_RETRY,
                    summary=f"Record order {order.order_id} in the access registry",
                )
            except ActivityError as err:
                status.state = "failed"
                status.failure = cause_message(err)
                self._publish()
                raise ApplicationError(
                    f"the registry refused order {order.order_id}: {status.failure}",
                    type="OrderRefused",
                    non_retryable=True,
                ) from err
            status.grants_suspended = len(applied.suspended)
            self._publish()
            await self._sweep()
            # Releases started while the first batch went out were not in the first answer.
            await self._sweep()
            status.state = "active"
            status.applied_at = workflow.now()
            self._publish()
        await self._until_lifted()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status

    async def _resolve_officers(self) -> None:
        """Who may exempt and lift: the people of the worker's installed default policy with
        the ``export_control_officer`` role, pinned in history when the order is applied
        (nobody, if the worker has no default policy: the order then cannot be lifted by a
        person and must be superseded)."""
        status = self._status
        try:
            installed: InstalledPolicy = await workflow.execute_activity(
                "resolve_policy",
                ResolvePolicyRequest(release_id=status.order.order_id, policy_ref=None),
                result_type=InstalledPolicy,
                start_to_close_timeout=timeouts.POLICY_TIMEOUT,
                retry_policy=timeouts.POLICY_RETRY,
                summary="Resolve who may exempt and lift (the default policy)",
            )
        except ActivityError:
            status.officers = []
            return
        status.officers = decide.officers(installed.policy)
        self._max_age = installed.policy.signature_max_age

    async def _check_start(self, order: AccessOrderInput) -> None:
        """The order's start is signed by the person applying it, who holds the officer role:
        checked (by an activity, pinned in history) before anything is applied; a refusal ends
        the order in one line with nothing recorded in the registry."""
        status = self._status
        try:
            decide.authorise(status, "apply", order.issued_by)
            body = order.model_dump(mode="json", exclude_defaults=True, exclude={"signature"})
            if order.signature is not None:
                body["signature"] = order.signature.model_dump(mode="json")
            await workflow.execute_activity(
                "check_signed_request",
                SignedRequestCheck(
                    action="apply_order",
                    request=body,
                    expected=signed_requests.order_binding(order.order_id),
                    max_age_seconds=self._max_age.total_seconds(),
                ),
                start_to_close_timeout=timeouts.POLICY_TIMEOUT,
                retry_policy=timeouts.POLICY_RETRY,
                summary=f"Check the signature of {order.issued_by} on order {order.order_id}",
            )
        except (Refused, ActivityError) as err:
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(err, ActivityError) and not (
                isinstance(cause, ApplicationError) and cause.non_retryable
            ):
                raise
            assert isinstance(cause, ApplicationError)
            status.state = "failed"
            status.failure = cause.message
            self._publish()
            raise Refused(
                f"order {order.order_id} refused: {cause.message}", cause.type or "refused"
            ) from None

    def _authenticate(self, update: str, payload: RawValue) -> None:
        """The signed-request check of ``gatekeeper.signed_requests`` (validators only)."""
        request = json.loads(bytes(payload.payload.data))
        task_queue = workflow.info().task_queue
        try:
            with workflow.unsafe.sandbox_unrestricted():
                signed_requests.check(
                    action=update,
                    request=request,
                    expected=signed_requests.order_binding(
                        self._status.order.order_id, self._status.first_run_id
                    ),
                    directory=authority.directory_for(task_queue),
                    now=datetime.now(UTC),  # the worker's clock: see signed_requests.check
                    max_age=self._max_age,
                    used_nonces=self._nonces,
                    unsigned_allowed=authority.unsigned_allowed(task_queue),
                )
        except Refusal as refusal:
            raise Refused(refusal.message, refusal.rule.value) from None

    def _attest(self, update: str, payload: RawValue) -> dict[str, object] | None:
        """The handler's record of the signed request (also on replay) and its spent nonce."""
        request = json.loads(bytes(payload.payload.data))
        nonce = signed_requests.nonce_of(request)
        if nonce is not None:
            self._nonces.add(nonce)
        return signed_requests.attestation(update, request)

    async def _until_lifted(self) -> None:
        """Wait for the lift, sending again to releases that did not answer (bounded), and
        after the lift until every restore is answered or the rounds run out.

        Deadlines cannot drift here (see ``workflows.waiting.Waits.sleep_until_change``): the only
        timer is a fixed ``workflow.sleep`` between rounds, and a fired one is a round reached;
        nothing compares ``workflow.now()`` with a deadline, so a clock that lags the history
        (a query answered while the task waits on a dead worker's sticky queue) cannot start
        another timer. ``workflow.now()`` is read only for timestamps."""
        status = self._status

        def redeliver() -> bool:
            return (
                bool(decide.unanswered(status))
                and status.redeliveries < timeouts.ORDER_MAX_REDELIVERIES
            )

        while status.state != "lifted" or redeliver():
            if not redeliver():
                await workflow.wait_condition(lambda: status.state == "lifted" or redeliver())
                continue
            await workflow.sleep(
                timeouts.ORDER_REDELIVER_EVERY, summary="Send again to unanswered releases"
            )
            async with self._lock:
                if status.state in ("active", "lifted") and redeliver():
                    status.redeliveries += 1
                    await self._deliver(
                        [decide.resend(status, a, self._restore) for a in decide.unanswered(status)]
                    )

    # --- reaching releases ----------------------------------------------------------------

    async def _sweep(self, models: list[str] | None = None) -> None:
        """Suspend every running release of the order's models (or of ``models``, some of
        them) not reached yet."""
        status = self._status
        status.sweeps += 1
        models = decide.sweep_models(status, models)
        found = await self._find_running(models, f"Find running releases of {', '.join(models)}")
        await self._deliver(decide.newly_found(status, found.releases, models))

    async def _sweep_lifted(self, restore: AccessRestoreRequest) -> None:
        """Restore the running releases of the order's models it never reached (see
        :data:`LIFT_SWEEP_PATCH`)."""
        status = self._status
        status.sweeps += 1
        models = list(status.order.models)
        found = await self._find_running(
            models, f"Find running releases of {', '.join(models)} the order never reached"
        )
        await self._deliver(decide.lift_sweep(status, found.releases, restore))

    async def _find_running(self, models: list[str], summary: str) -> AffectedReleases:
        """The running releases of ``models``, by a visibility query (an activity)."""
        found: AffectedReleases = await workflow.execute_activity(
            "find_affected_releases",
            AffectedReleasesRequest(order_id=self._status.order.order_id, models=models),
            result_type=AffectedReleases,
            start_to_close_timeout=timeouts.ORDER_FIND_TIMEOUT,
            retry_policy=timeouts.ORDER_FANOUT_RETRY,
            summary=summary,
        )
        return found

    async def _deliver(self, updates: list[ReleaseUpdate]) -> None:
        """Send ``updates`` in concurrent batches and record every answer."""
        if not updates:
            return
        status = self._status
        for update in updates:
            status.releases[update.release_id] = ReleaseAck(
                release_id=update.release_id, model=update.model, update=update.name
            )
        self._publish()
        batches = [
            updates[i : i + timeouts.ORDER_BATCH_SIZE]
            for i in range(0, len(updates), timeouts.ORDER_BATCH_SIZE)
        ]
        slots = asyncio.Semaphore(timeouts.ORDER_PARALLEL_BATCHES)

        async def send(number: int, batch: list[ReleaseUpdate]) -> None:
            async with slots:
                result = await workflow.execute_activity(
                    "send_release_updates",
                    ReleaseUpdateBatch(
                        order_id=status.order.order_id,
                        updates=batch,
                        answer_within=timeouts.ORDER_RELEASE_UPDATE_TIMEOUT.total_seconds(),
                    ),
                    result_type=ReleaseUpdateResult,
                    start_to_close_timeout=timeouts.ORDER_FANOUT_TIMEOUT,
                    heartbeat_timeout=timeouts.ORDER_FANOUT_HEARTBEAT,
                    retry_policy=timeouts.ORDER_FANOUT_RETRY,
                    summary=f"{batch[0].name} to {len(batch)} release(s) "
                    f"(batch {number} of {len(batches)})",
                )
            for ack in result.acks:
                status.releases[ack.release_id] = ack
            self._publish()

        await asyncio.gather(*(send(n, b) for n, b in enumerate(batches, start=1)))

    # --- updates ----------------------------------------------------------------------------

    # Both updates take one plain JSON argument and parse it themselves (see the release
    # workflow): a malformed payload is a one-line ``bad_input`` refusal in the validator, and
    # every refusal is a ``Refused``, written to history without a stack trace.

    @workflow.update
    async def exempt(self, payload: RawValue = NO_ARGUMENT) -> OrderUpdateResult:
        """Exempt named partners (and all their staff) for some or all of the order's models."""
        req = _parse("exempt", OrderExemptionRequest, payload)
        status = self._status
        attestation = self._attest("exempt", payload)
        await workflow.wait_condition(lambda: status.state != "applying")
        async with self._lock:
            decide.check_exempt(status, req)
            models = req.models or [ALL_MODELS]
            now = workflow.now()
            try:
                result = await workflow.execute_activity(
                    "exempt_access_order",
                    ExemptOrderRequest(
                        idempotency_key=f"{status.order.order_id}:exempt:{len(status.exemptions) + 1}",
                        order_id=status.order.order_id,
                        partners=req.partners,
                        models=models,
                        by=req.by,
                        reason=req.reason,
                        reference=req.reference,
                        at=now,
                    ),
                    result_type=ExemptOrderResult,
                    start_to_close_timeout=timeouts.ACCESS_TIMEOUT,
                    retry_policy=timeouts.ACCESS_RETRY,
                    summary=f"Exempt {', '.join(req.partners)} in the access registry",
                )
            except ActivityError as err:
                raise Refused(
                    f"the registry refused the exemption: {cause_message(err)}", "exemption_refused"
                ) from err
            status.exemptions.append(
                OrderExemption(
                    partners=req.partners,
                    models=models,
                    by=req.by,
                    at=now,
                    reason=req.reason,
                    reference=req.reference,
                    attestation=attestation,
                )
            )
            status.grants_restored += len(result.restored)
            self._publish()
            # Suspended releases of the exempted models carry the new exempt list; releases of
            # those models started since the order was applied are reached now. The order's
            # other models' releases are not touched.
            await self._deliver(decide.after_exemption(status, models))
            await self._sweep(models if workflow.patched(EXEMPTION_SCOPE_PATCH) else None)
        return OrderUpdateResult(
            message=decide.exempted(req, models),
            order_id=status.order.order_id,
            state=status.state,
            exemptions=len(status.exemptions),
        )

    @exempt.validator
    def _validate_exempt(self, payload: RawValue = NO_ARGUMENT) -> None:
        decide.check_exempt(self._status, _parse("exempt", OrderExemptionRequest, payload))
        self._authenticate("exempt", payload)

    @workflow.update
    async def lift(self, payload: RawValue = NO_ARGUMENT) -> OrderStatus:
        """Lift the order with the safeguards it requires; suspended releases are restored."""
        req = _parse("lift", OrderLiftRequest, payload)
        status = self._status
        attestation = self._attest("lift", payload)
        await workflow.wait_condition(lambda: status.state != "applying")
        async with self._lock:
            decide.check_lift(status, req)
            status.state = "lifting"
            self._publish()
            now = workflow.now()
            try:
                lifted = await workflow.execute_activity(
                    "lift_access_order",
                    LiftOrderRequest(
                        order_id=status.order.order_id,
                        lifted_by=req.by,
                        safeguards=req.safeguards,
                        reason=decide.reason(req.reason, req.reference),
                        lifted_at=now,
                    ),
                    result_type=LiftOrderResult,
                    start_to_close_timeout=timeouts.ACCESS_TIMEOUT,
                    retry_policy=timeouts.ACCESS_RETRY,
                    summary=f"Lift order {status.order.order_id} in the access registry",
                )
            except ActivityError as err:
                status.state = "active"
                self._publish()
                raise Refused(
                    f"the registry refused the lift: {cause_message(err)}", "lift_refused"
                ) from err
            status.grants_restored += len(lifted.restored)
            status.lifted_at = now
            status.lifted_by = req.by
            status.lift_attestation = attestation
            status.lift_reason = req.reason
            status.safeguards = list(req.safeguards)
            self._restore = decide.restoration(status, req)
            await self._deliver(decide.after_lift(status, self._restore))
            if workflow.patched(LIFT_SWEEP_PATCH):
                await self._sweep_lifted(self._restore)
            status.state = "lifted"
            self._publish()
        return status

    @lift.validator
    def _validate_lift(self, payload: RawValue = NO_ARGUMENT) -> None:
        decide.check_lift(self._status, _parse("lift", OrderLiftRequest, payload))
        self._authenticate("lift", payload)

    # --- queries and what operators see -----------------------------------------------------

    @workflow.query
    def get_status(self) -> OrderStatus:
        """The order, its state, its exemptions and every affected release's latest answer."""
        return self._status

    def _publish(self) -> None:
        details = decide.details(self._status)
        if details != self._details:
            workflow.set_current_details(details)
            self._details = details

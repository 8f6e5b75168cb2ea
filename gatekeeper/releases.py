"""Client-side operations on releases: what the CLI, the demo and other programs call.

This is the one place Temporal client errors become Gatekeeper errors: a duplicate start becomes
:class:`ReleaseExists`, an unknown id :class:`ReleaseNotFound`, a refused update
:class:`DecisionRefused` carrying the rule it broke.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution as ProtoExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from gatekeeper.errors import (
    DecisionRefused,
    InputError,
    NoAnswer,
    ReleaseExists,
    ReleaseNeedsRepair,
    ReleaseNotFound,
    StartRefused,
)
from gatekeeper.ids import release_id_of, release_workflow_id
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.installed import parse_policy_ref
from gatekeeper.models.messages import (
    AccessRestoreRequest,
    AccessSuspensionRequest,
    AmendRequest,
    AuthorshipAttestation,
    DecisionRequest,
    DelegationRequest,
    DelegationRevocation,
    GovernmentResponse,
    OperatorRequest,
)
from gatekeeper.models.partners import PartnerApprovalRequest
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import (
    STARTED_UPDATE,
    ReleaseHead,
    ReleaseOutcome,
    ReleaseStatus,
    UpdateResult,
)
from gatekeeper.release_list import ListFilter, ReleaseSummary, summary_of
from gatekeeper.release_start import ENDED_FIRST, read_start_outcome, start_operation
from gatekeeper.signed_requests import ACTOR_FIELDS, release_binding
from gatekeeper.signer import Signer
from gatekeeper.temporal_errors import (
    refusal,
    refused_because,
    start_refusal,
    task_failing,
    timed_out,
    workflow_error,
)

#: The rule a release answers with while it resolves its policy.
STARTING_RULE = "release_starting"
#: How long a query may wait for a worker to answer before the caller is told why it waits.
QUERY_TIMEOUT = timedelta(seconds=15)
#: How long a query waits before checking whether the release's workflow task is failing.
REPAIR_CHECK_AFTER = timedelta(seconds=2)
#: What a worker that predates the ``get_head`` query answers it with (the SDK's words).
HEAD_UNKNOWN = "Query handler for 'get_head' expected but not found"
#: How long a decision may wait to be judged (validator and handler) before the same.
UPDATE_TIMEOUT = timedelta(seconds=30)


#: Signed updates that go to access orders, not releases.
_ORDER_ACTIONS = frozenset({"apply_order", "exempt", "lift"})

#: Events that end a workflow task attempt.
_TASK_ENDED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


class Releases:
    """Start, inspect and decide on releases through a Temporal client."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        query_timeout: timedelta = QUERY_TIMEOUT,
        update_timeout: timedelta = UPDATE_TIMEOUT,
        signer: Signer | None = None,
    ) -> None:
        """``signer`` signs every state-changing request with its actor's key (without one,
        requests go unsigned, which a worker refuses unless it allows unsigned requests)."""
        self.client = client
        self.task_queue = task_queue
        self.query_timeout = query_timeout
        self.update_timeout = update_timeout
        self.signer = signer

    def handle(self, release_id: str) -> WorkflowHandle[Any, ReleaseOutcome]:
        return self.client.get_workflow_handle(
            release_workflow_id(release_id), result_type=ReleaseOutcome
        )

    # --- start and read -------------------------------------------------------------------

    async def start(self, spec: ReleaseSpec, policy_ref: str | None = None) -> ReleaseStatus:
        """Start a release under the installed policy ``policy_ref`` (``policy_id@version``;
        ``None``: the worker's default); refuse a release id that was ever used before.

        The worker resolves the reference through its own policy store. The start carries an
        update (Update-with-Start) that the release answers once it has done so and reached its
        first wait (a gate, the government, an operator) or ended; this then answers with that
        status. Nothing polls.

        Raises:
            InputError: ``policy_ref`` is not ``ID@VERSION`` (nothing is started).
            StartRefused: the worker refused the start (e.g. the policy is not installed).
        """
        if not isinstance(policy_ref, str | None):
            raise InputError(
                "a release names an installed policy (ID@VERSION), never carries one: install it "
                "with `gatekeeper policy install FILE` and name it"
            )
        if policy_ref is not None:
            parse_policy_ref(policy_ref)
        operation = start_operation(
            spec,
            policy_ref,
            workflow_id=release_workflow_id(spec.release_id),
            task_queue=self.task_queue,
        )
        handle = self.handle(spec.release_id)
        try:
            # One call: the start, and an update the release answers once it has resolved its
            # policy and reached its first wait (or with the refusal of its start).
            await self.client.execute_update_with_start_workflow(
                STARTED_UPDATE,
                start_workflow_operation=operation,
                result_type=UpdateResult,
                rpc_timeout=self.update_timeout,
            )
        except WorkflowAlreadyStartedError as err:
            raise ReleaseExists(
                f"release {spec.release_id} already exists (workflow {handle.id}); "
                "release ids are never reused — choose a new release_id"
            ) from err
        except WorkflowUpdateFailedError as err:
            raise await self._refused_start(handle, err) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            # A worker that answers but has not reached the first wait yet (a slow evidence
            # check, a long first activity): its status as it is now. No worker: no answer.
            try:
                status: ReleaseStatus = await self._query(handle, "get_status", ReleaseStatus)
            except RPCError:
                raise NoAnswer(
                    f"release {spec.release_id} started, but no worker answered within "
                    f"{self.update_timeout.total_seconds():g} s; is a worker running on task "
                    f"queue {self.task_queue!r}? (`gatekeeper worker`)"
                ) from err
            return status
        except RPCError as err:
            raise await self._unanswered_start(handle, err) from err
        finally:
            await read_start_outcome(operation)
        try:
            started: ReleaseStatus = await self._query(handle, "get_status", ReleaseStatus)
        except RPCError as err:
            raise self._rpc_error(spec.release_id, err) from err
        return started

    async def _unanswered_start(self, handle: WorkflowHandle[Any, Any], err: RPCError) -> Exception:
        """Why a start's update got no answer: the release ended first (its refusal), or it runs
        but no worker takes it up (none is running, or its workflow task fails, e.g. for a
        codec key the worker lacks), or it never started (the server's own error)."""
        release_id = release_id_of(handle.id)
        try:
            refused = await self._start_refusal(handle)
        except RPCError:
            return self._rpc_error(release_id, err)
        if refused is not None:
            return refused
        return NoAnswer(
            f"release {release_id} started, but no worker answered ({err.message}); is a worker "
            f"running on task queue {self.task_queue!r}, with the keys it needs? "
            "(`gatekeeper worker`)"
        )

    async def _refused_start(
        self, handle: WorkflowHandle[Any, Any], err: WorkflowUpdateFailedError
    ) -> StartRefused:
        """The refusal of a start: the update's own (the start input), else the release's end
        (its policy refused: the release ended before it answered the update)."""
        message, rule = refused_because(err)
        if rule != ENDED_FIRST:
            return StartRefused(message, rule=rule)
        refused = await self._start_refusal(handle)
        return refused or StartRefused(message, rule=rule)

    async def _query(self, handle: WorkflowHandle[Any, Any], name: str, result_type: Any) -> Any:
        """Query ``name``; while the release is still resolving its policy, ask again; if it
        never started (the worker refused its policy), raise that refusal."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.query_timeout.total_seconds()
        retried = False
        while True:
            try:
                return await handle.query(
                    name, result_type=result_type, rpc_timeout=self.query_timeout
                )
            except WorkflowQueryFailedError as err:
                if task_failing(err.message):
                    raise ReleaseNeedsRepair(release_id_of(handle.id)) from err
                # The failure's type does not survive a query (and with payload encryption not
                # even its message), so ask the release whether it is still starting.
                try:
                    starting = await handle.query(
                        "is_starting", result_type=bool, rpc_timeout=self.query_timeout
                    )
                except WorkflowQueryFailedError as again:
                    if task_failing(again.message):
                        raise ReleaseNeedsRepair(release_id_of(handle.id)) from again
                    raise DecisionRefused(err.message, rule="query_failed") from err
                if not starting:
                    if retried:
                        raise DecisionRefused(err.message, rule="query_failed") from err
                    retried = True  # it may have finished starting between the two queries
                    continue
                refused = await self._start_refusal(handle)
                if refused is not None:
                    raise refused from err
                if loop.time() > deadline:
                    raise DecisionRefused(err.message, rule=STARTING_RULE) from err
                await asyncio.sleep(0.05)

    async def _start_refusal(self, handle: WorkflowHandle[Any, Any]) -> StartRefused | None:
        """Why the release ended before its ledger existed, or ``None`` while it still runs."""
        description = await handle.describe()
        if description.status in (None, WorkflowExecutionStatus.RUNNING):
            return None
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return start_refusal(err)
        return StartRefused(f"release {handle.id} ended before it started")

    async def _answer(self, release_id: str, name: str, result_type: Any) -> Any:
        """Query ``name``; while the query is unanswered, every :data:`REPAIR_CHECK_AFTER` the
        release is checked for a failing workflow task (which would keep the query waiting to
        the timeout). Checked again and again, not once: Temporal shows a task as failing only
        once its retry is pending, which may come after the first check."""
        task = asyncio.ensure_future(self._query(self.handle(release_id), name, result_type))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=REPAIR_CHECK_AFTER.total_seconds())
                if done:
                    return task.result()
                if await self.needs_repair(release_id):
                    raise ReleaseNeedsRepair(release_id)
        finally:
            if not task.done():
                task.cancel()

    async def status(self, release_id: str) -> ReleaseStatus:
        try:
            result: ReleaseStatus = await self._answer(release_id, "get_status", ReleaseStatus)
        except RPCError as err:
            raise await self._diagnosed(release_id, err) from err
        return result

    async def head(self, release_id: str) -> ReleaseHead:
        """Where the release is (``get_head``: its status version, stage, state, what it awaits
        and what a signed request binds), a few hundred bytes where ``status`` answers the
        whole release. A worker that predates the query is asked for the status instead."""
        try:
            result: ReleaseHead = await self._answer(release_id, "get_head", ReleaseHead)
        except DecisionRefused as err:
            if HEAD_UNKNOWN not in str(err):
                raise
            return ReleaseHead.of(await self.status(release_id))
        except RPCError as err:
            raise await self._diagnosed(release_id, err) from err
        return result

    async def audit(self, release_id: str) -> list[AuditEvent]:
        try:
            events: list[AuditEvent] = await self._answer(release_id, "get_audit", list[AuditEvent])
        except RPCError as err:
            raise await self._diagnosed(release_id, err) from err
        return events

    async def describe(self, release_id: str) -> WorkflowExecutionStatus | None:
        try:
            description = await self.handle(release_id).describe()
        except RPCError as err:
            raise self._rpc_error(release_id, err) from err
        return description.status

    async def list(self, filters: ListFilter, *, limit: int = 100) -> list[ReleaseSummary]:
        rows = []
        async for execution in self.iterate(filters, limit=limit):
            rows.append(summary_of(execution))
        return rows

    async def iterate(
        self, filters: ListFilter, *, limit: int | None = None
    ) -> AsyncIterator[WorkflowExecution]:
        count = 0
        async for execution in self.client.list_workflows(filters.query()):
            yield execution
            count += 1
            if limit is not None and count >= limit:
                return

    # --- decisions --------------------------------------------------------------------------

    async def decide(
        self, release_id: str, kind: DecisionKind, request: DecisionRequest
    ) -> UpdateResult:
        return await self._update(release_id, kind.value, request)

    async def amend(self, release_id: str, request: AmendRequest) -> UpdateResult:
        return await self._update(release_id, "amend", request)

    async def respond(self, release_id: str, request: GovernmentResponse) -> UpdateResult:
        return await self._update(release_id, "record_government_response", request)

    async def operate(self, release_id: str, action: str, request: OperatorRequest) -> UpdateResult:
        if action not in ("hold", "resume", "withdraw"):
            raise ValueError(f"unknown operator action {action!r}")
        return await self._update(release_id, action, request)

    async def delegate(self, release_id: str, request: DelegationRequest) -> UpdateResult:
        return await self._update(release_id, "delegate", request)

    async def revoke_delegation(
        self, release_id: str, request: DelegationRevocation
    ) -> UpdateResult:
        return await self._update(release_id, "revoke_delegation", request)

    async def attest_authorship(
        self, release_id: str, request: AuthorshipAttestation
    ) -> UpdateResult:
        return await self._update(release_id, "attest_authorship", request)

    async def approve_partners(
        self, release_id: str, request: PartnerApprovalRequest
    ) -> UpdateResult:
        return await self._update(release_id, "approve_partners", request)

    async def suspend(self, release_id: str, request: AccessSuspensionRequest) -> UpdateResult:
        return await self._update(release_id, "suspend_access", request)

    async def restore(self, release_id: str, request: AccessRestoreRequest) -> UpdateResult:
        return await self._update(release_id, "restore_access", request)

    async def send_signed(
        self, release_id: str, action: str, request: dict[str, Any]
    ) -> UpdateResult:
        """Send ``request`` (plain JSON that already carries its signature: a passkey's, a
        gateway's) as the update ``action``, exactly as it is: never re-signed, never re-dumped,
        so the worker checks the very statement that was signed."""
        if action not in ACTOR_FIELDS or action in _ORDER_ACTIONS:
            raise ValueError(f"{action!r} is not a release's signed update")
        return await self._update(release_id, action, request)

    async def _update(self, release_id: str, name: str, request: Any) -> UpdateResult:
        # What the signer binds is what the release holds now (its head), asked for while the
        # release is checked for repair: one round trip before the update, not two.
        signer = self.signer if name in ACTOR_FIELDS else None
        head = asyncio.ensure_future(self.head(release_id)) if signer is not None else None
        try:
            # A release whose workflow task keeps failing would hold the update until the
            # timeout (the server keeps it in memory, not in the history): say so at once and
            # send nothing.
            if await self.needs_repair(release_id):
                raise ReleaseNeedsRepair(release_id)
            if signer is not None and head is not None:
                request = signer.sign(name, request, release_binding(await head))
        finally:
            if head is not None and not head.done():
                head.cancel()
            elif head is not None and not head.cancelled():
                head.exception()  # retrieved: an error raised above is the one reported
        try:
            result: UpdateResult = await self.handle(release_id).execute_update(
                name, request, result_type=UpdateResult, rpc_timeout=self.update_timeout
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            if await self.needs_repair(release_id):
                raise ReleaseNeedsRepair(release_id) from err
            raise self._no_answer(release_id, self.update_timeout) from err
        except WorkflowUpdateFailedError as err:
            raise refusal(err) from err
        except RPCError as err:
            raise self._rpc_error(release_id, err) from err
        return result

    async def needs_repair(self, release_id: str) -> bool:
        """Whether the release's workflow task is failing attempt after attempt: its last task
        ended in ``WORKFLOW_TASK_FAILED`` (Temporal writes only the first failure of a run of
        attempts) and the task pending now is a retry. A worker that is merely away leaves a
        task scheduled or timed out, never failed."""
        handle = self.handle(release_id)
        try:
            description = await handle.describe()
            pending = description.raw_description.pending_workflow_task
            if pending.attempt < 2:
                return False
            response = await self.client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=self.client.namespace,
                    execution=ProtoExecution(workflow_id=handle.id, run_id=description.run_id),
                    maximum_page_size=20,
                )
            )
        except RPCError:
            return False
        for event in response.history.events:
            if event.event_type in _TASK_ENDED:
                return bool(event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        return False

    async def _diagnosed(self, release_id: str, err: RPCError) -> Exception:
        """:meth:`_rpc_error`, except that a release which did not answer because its workflow
        task keeps failing is said to need repair."""
        error = self._rpc_error(release_id, err)
        if isinstance(error, NoAnswer) and await self.needs_repair(release_id):
            return ReleaseNeedsRepair(release_id)
        return error

    def _no_answer(self, release_id: str, waited: timedelta) -> NoAnswer:
        return NoAnswer(
            f"release {release_id} did not answer within {waited.total_seconds():g} s; is a "
            f"worker running on task queue {self.task_queue!r}? (`gatekeeper worker`)"
        )

    def _rpc_error(self, release_id: str, err: RPCError) -> Exception:
        if task_failing(err.message):
            return ReleaseNeedsRepair(release_id)
        if timed_out(err):
            return self._no_answer(release_id, self.query_timeout)
        return workflow_error(
            err,
            what=f"release {release_id}",
            ended=DecisionRefused(
                f"release {release_id} has ended; it accepts no further decisions",
                rule="release_terminal",
            ),
            missing=ReleaseNotFound(
                f"no release '{release_id}' (workflow {release_workflow_id(release_id)} not found)"
            ),
        )

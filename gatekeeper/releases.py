"""Client-side operations on releases: what the CLI, the demo and other programs call.

This is the one place Temporal client errors become Gatekeeper errors: a duplicate start becomes
:class:`ReleaseExists`, an unknown id :class:`ReleaseNotFound`, a refused update
:class:`DecisionRefused` carrying the rule it broke.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from gatekeeper import search_attributes as sa
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
    ReleaseInput,
    ReleaseOutcome,
    ReleaseStatus,
    UpdateResult,
)
from gatekeeper.signed_requests import ACTOR_FIELDS, release_binding
from gatekeeper.signer import Signer
from gatekeeper.temporal_errors import (
    refusal,
    start_refusal,
    task_failing,
    timed_out,
    workflow_error,
)
from gatekeeper.text import for_markdown

WORKFLOW_TYPE = "ModelReleaseWorkflow"
#: The rule a release answers with while it resolves its policy.
STARTING_RULE = "release_starting"
#: How long a query may wait for a worker to answer before the caller is told why it waits.
QUERY_TIMEOUT = timedelta(seconds=15)
#: How long a query waits before checking whether the release's workflow task is failing.
REPAIR_CHECK_AFTER = timedelta(seconds=2)
#: How long a decision may wait to be judged (validator and handler) before the same.
UPDATE_TIMEOUT = timedelta(seconds=30)


#: Events that end a workflow task attempt.
_TASK_ENDED = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


@dataclass(frozen=True)
class ReleaseSummary:
    """One row of ``release list``: what visibility knows without asking the workflow."""

    release_id: str
    model: str
    version: str
    stage: str
    state: str
    risk_tier: str
    awaiting_roles: list[str]
    window_ends_at: datetime | None
    submitted_by: str
    started_at: datetime | None
    closed_at: datetime | None
    execution_status: str


@dataclass(frozen=True)
class ListFilter:
    """Filters for ``release list``; each becomes a clause of a visibility query."""

    stage: str | None = None
    state: str | None = None
    model: str | None = None
    awaiting_role: str | None = None
    window_ends_before: datetime | None = None
    submitted_by: str | None = None
    risk_tier: str | None = None
    running_only: bool = False
    task_queue: str | None = None

    def query(self) -> str:
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
        for attribute, value in (
            (sa.RELEASE_STAGE.name, self.stage),
            (sa.RELEASE_STATE.name, self.state),
            (sa.MODEL_NAME.name, self.model),
            (sa.AWAITING_ROLES.name, self.awaiting_role),
            (sa.SUBMITTED_BY.name, self.submitted_by),
            (sa.RISK_TIER.name, self.risk_tier),
        ):
            if value:
                clauses.append(f"{attribute} = {_quote(value)}")
        if self.window_ends_before is not None:
            clauses.append(
                f"{sa.GOVERNMENT_WINDOW_ENDS_AT.name} < '{self.window_ends_before.isoformat()}'"
            )
        if self.running_only:
            clauses.append("ExecutionStatus = 'Running'")
        if self.task_queue:
            clauses.append(f"TaskQueue = {_quote(self.task_queue)}")
        return " AND ".join(clauses)


def _quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"filter value {value!r} may not contain quotes or backslashes")
    return f"'{value}'"


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

        The worker resolves the reference through its own policy store; this waits until the
        release has done so and answers with its first status.

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
        search = TypedSearchAttributes(
            [
                SearchAttributePair(sa.MODEL_NAME, spec.model.name),
                SearchAttributePair(sa.MODEL_VERSION, spec.model.version),
                SearchAttributePair(sa.RISK_TIER, spec.risk_tier.value),
                SearchAttributePair(sa.SUBMITTED_BY, spec.submitter),
                SearchAttributePair(sa.RELEASE_STATE, "active"),
            ]
        )
        try:
            handle = await self.client.start_workflow(
                WORKFLOW_TYPE,
                ReleaseInput(spec=spec, policy_ref=policy_ref),
                id=release_workflow_id(spec.release_id),
                task_queue=self.task_queue,
                result_type=ReleaseOutcome,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=search,
                static_summary=(
                    f"{spec.model.name} {spec.model.version} · risk {spec.risk_tier.value} · "
                    f"submitted by {spec.submitter}"
                ),
                static_details=_static_details(spec, policy_ref),
            )
        except WorkflowAlreadyStartedError as err:
            raise ReleaseExists(
                f"release {spec.release_id} already exists (workflow {release_workflow_id(spec.release_id)}); "
                "release ids are never reused — choose a new release_id"
            ) from err
        try:
            status: ReleaseStatus = await self._query(handle, "get_status", ReleaseStatus)
        except RPCError as err:
            raise NoAnswer(
                f"release {spec.release_id} started, but no worker answered within "
                f"{self.query_timeout.total_seconds():g} s; is a worker running on task queue "
                f"{self.task_queue!r}? (`gatekeeper worker`)"
            ) from err
        return status

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
        """Query ``name``; a query still unanswered after :data:`REPAIR_CHECK_AFTER` is checked
        against a failing workflow task (which would keep it waiting to the timeout)."""
        task = asyncio.ensure_future(self._query(self.handle(release_id), name, result_type))
        try:
            done, _ = await asyncio.wait({task}, timeout=REPAIR_CHECK_AFTER.total_seconds())
            if not done and await self.needs_repair(release_id):
                raise ReleaseNeedsRepair(release_id)
            return await task
        finally:
            if not task.done():
                task.cancel()

    async def status(self, release_id: str) -> ReleaseStatus:
        try:
            result: ReleaseStatus = await self._answer(release_id, "get_status", ReleaseStatus)
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
            rows.append(_summary(execution))
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

    async def _update(self, release_id: str, name: str, request: Any) -> UpdateResult:
        # A release whose workflow task keeps failing would hold the update until the timeout
        # (the server keeps it in memory, not in the history): say so at once and send nothing.
        if await self.needs_repair(release_id):
            raise ReleaseNeedsRepair(release_id)
        if self.signer is not None and name in ACTOR_FIELDS:
            # What the signer binds is what the release holds now (its status).
            request = self.signer.sign(
                name, request, release_binding(await self.status(release_id))
            )
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


def _static_details(spec: ReleaseSpec, policy_ref: str | None) -> str:
    evidence = "\n".join(
        f"| {for_markdown(e.id)} | {e.kind.value} | `{e.sha256[:12]}` |" for e in spec.evidence
    )
    return (
        f"**{for_markdown(spec.model.name)} {for_markdown(spec.model.version)}** — "
        f"release `{spec.release_id}`\n\n"
        f"- Risk tier: **{spec.risk_tier.value}**; covered model: **{spec.covered_model.value}**\n"
        f"- Submitted by `{spec.submitter}`\n"
        f"- Artifact `{spec.artifact.sha256}`\n"
        f"- Policy `{policy_ref or 'the default installed policy'}` (resolved by the worker; its "
        "sha256 is in the status)\n\n"
        f"| evidence | kind | sha256 |\n|---|---|---|\n{evidence}\n"
    )


def _summary(execution: WorkflowExecution) -> ReleaseSummary:
    attrs = execution.typed_search_attributes
    release_id = release_id_of(execution.id)
    return ReleaseSummary(
        release_id=release_id,
        model=attrs.get(sa.MODEL_NAME) or "",
        version=attrs.get(sa.MODEL_VERSION) or "",
        stage=attrs.get(sa.RELEASE_STAGE) or "",
        state=attrs.get(sa.RELEASE_STATE) or "",
        risk_tier=attrs.get(sa.RISK_TIER) or "",
        awaiting_roles=list(attrs.get(sa.AWAITING_ROLES) or []),
        window_ends_at=attrs.get(sa.GOVERNMENT_WINDOW_ENDS_AT),
        submitted_by=attrs.get(sa.SUBMITTED_BY) or "",
        started_at=execution.start_time,
        closed_at=execution.close_time,
        execution_status=execution.status.name.lower() if execution.status else "unknown",
    )

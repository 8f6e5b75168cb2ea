"""ModelReleaseWorkflow: one release, interpreting its policy's pipeline of stages.

Each stage kind's coroutine lives with its kind in :mod:`gatekeeper.stages` and runs against
this workflow as its ``StageHost`` (the pipeline dispatches through the registry). The workflow
waits (durable timers, conditions), calls activities for side effects, and answers updates;
every change of state goes through the release's :class:`~gatekeeper.ledger.state.Ledger`
and its deciders (:mod:`gatekeeper.ledger.deciders`, one per decision path), which are
deterministic and free of Temporal calls. Workflow id: ``release-<release_id>``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError

# The package itself is the sandbox's own (imported before the shared modules below are hung on
# it): the sandboxed modules are then set on the sandbox's package, never on the process's, whose
# ``gatekeeper.rules`` (say) stays the process's module.
import gatekeeper

# Shared with the worker process: imported once, outside the sandbox. The sandbox shares a module
# only when it is imported by name inside this block, so each is named here; the rest, imported
# below, the sandbox imports afresh for each run and checks. tests/workflows/test_sandbox.py
# checks which side each module is on. Shared, and why:
# - cryptography (and gatekeeper.signing and .statements, which hold it): a pyo3 module loads
#   once per process; its Rust core imports cryptography.exceptions lazily when a signature
#   fails to verify, and that import inside the sandbox aborts the process.
# - gatekeeper.identity (authority, and the keys and heads it hands out): the worker's key
#   directory is the process's one instance (a sandboxed copy has none installed).
# - gatekeeper.models: the signed heads (gatekeeper.identity.heads) carry the ledger's audit
#   events, so each model must be one class on both sides (pydantic refuses an instance of a
#   look-alike class); and the pydantic classes are built once, not for every release.
# - gatekeeper.errors, gatekeeper.failures, gatekeeper.codec_refusals: what the shared modules
#   raise (parse_payload's BadInput, parse_policy_ref's InputError) is what this module catches.
# - yaml and gatekeeper.yamlfile (reading and writing YAML files, which no workflow does;
#   gatekeeper.spec imports them to read spec files): a parser of 6,000 lines, not decision
#   logic, that each run would otherwise import again (about a tenth of a replay's CPU time).
with workflow.unsafe.imports_passed_through():
    import cryptography.exceptions  # noqa: F401
    import yaml  # noqa: F401

    import gatekeeper.identity.authority as authority
    import gatekeeper.identity.keys
    import gatekeeper.models.policy  # the stage kinds' models (the Stage union)
    import gatekeeper.models.spec
    import gatekeeper.signing
    import gatekeeper.yamlfile  # noqa: F401
    from gatekeeper.codec_refusals import UNDECRYPTABLE_PAYLOAD
    from gatekeeper.errors import BadInput, InputError
    from gatekeeper.failures import Refused
    from gatekeeper.identity.heads import (
        LINK_LENGTH,
        AnchorRequest,
        HeadSignature,
    )
    from gatekeeper.models.audit import AuditEvent
    from gatekeeper.models.base import Model
    from gatekeeper.models.enums import DecisionKind, ReleaseState
    from gatekeeper.models.installed import (
        InstalledPolicy,
        ResolvePolicyRequest,
        parse_policy_ref,
    )
    from gatekeeper.models.io import (
        AuditFlushRequest,
        AuditFlushResult,
        EvidenceCheckRequest,
        EvidenceCheckResult,
        Notification,
        NotifyRequest,
        NotifySummary,
        RevokeRequest,
        RevokeResult,
    )
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
    from gatekeeper.models.partners import (
        PartnerApprovalRequest,
    )
    from gatekeeper.models.payloads import BAD_INPUT, NO_ARGUMENT, parse_payload
    from gatekeeper.models.status import (
        STARTED_UPDATE,
        ReleaseInput,
        ReleaseOutcome,
        ReleaseStatus,
        UpdateResult,
    )
    from gatekeeper.statements import SIGNATURE_FIELD

# The decision logic, imported and checked by the sandbox for each run (no I/O, clock or
# randomness at import or in use): the ledger and its deciders, the rules, the spec's checks,
# routing, request authentication, the stage kinds, the timeouts and the details.
import gatekeeper.routing as routing
import gatekeeper.search_attributes as sa
import gatekeeper.signed_requests as signed_requests
from gatekeeper.ids import release_id_of
from gatekeeper.ledger.checks import record_refusal
from gatekeeper.ledger.deciders import (
    AmendDecider,
    AuthorshipDecider,
    Deciders,
    DelegationDecider,
    GovernmentDecider,
    OperatorDecider,
    PartnerListDecider,
    ReviewDecider,
    SuspensionDecider,
)
from gatekeeper.ledger.notices import Notice
from gatekeeper.ledger.state import IntegrityError, Ledger
from gatekeeper.rules import BUDGET_OF, PADDING_BYTES, Refusal, Rule, refuse
from gatekeeper.spec import check_spec_against_policy
from gatekeeper.stages import run_stage
from gatekeeper.status_details import current_details
from workflows import timeouts

M = TypeVar("M", bound=Model)
#: ``ApplicationError.type`` while the release resolves its policy (validators and queries).
RELEASE_STARTING = "release_starting"
#: How refusals of the start input name it ("bad input for the release's start: spec.x: ...").
START_INPUT = "the release's start"
#: ``ApplicationError.type`` of a spec the resolved policy does not admit (e.g. its submitter).
SPEC_NOT_ALLOWED = "spec_not_allowed"
#: The patch under which a release signs its audit head at stage ends and at its end (issue 12).
#: Releases started before it (no marker in their history) finish without, as they started.
ANCHOR_PATCH = "anchor-audit-heads"
#: The patch under which only the verification of the release's latest evidence is recorded
#: (issue 13): each amend that changes a digest moves the ledger's evidence version, and a
#: verification asked for at an older version is dropped when it lands. Releases started before
#: it record every verification as it lands, as they did.
EVIDENCE_PATCH = "versioned-evidence-checks"
#: The shortest timer a wait starts: a clock already past still gets one (see sleep_until_change).
MIN_TIMER = timedelta(milliseconds=1)


class StaleClock(RuntimeError):
    """A timer fired in an activation whose clock is before its deadline (see
    ``ModelReleaseWorkflow.sleep_until_change``). Not a Temporal failure type: raising it fails
    the workflow task, never the release; the task is retried from history."""


def raw_data(payload: RawValue) -> bytes:
    """The update's argument as sent (what its history stores)."""
    return bytes(payload.payload.data)


def content_size(request: Model) -> int:
    """What a request counts against the payload budget: its JSON without the signature (a
    signature's size is bounded, and accepted requests are counted by their own budgets)."""
    return len(request.model_dump_json(exclude={SIGNATURE_FIELD}))


def signature_size(request: Model) -> int:
    return len(request.model_dump_json()) - content_size(request)


@workflow.defn(name="ModelReleaseWorkflow")
class ModelReleaseWorkflow:
    """A model release from internal review to public launch, under one policy snapshot."""

    @workflow.init
    def __init__(self, payload: RawValue = NO_ARGUMENT) -> None:
        # The start input is plain JSON parsed here, like every update's: an input the worker
        # cannot read ends the release at once with one ``bad_input`` line (raised by run()),
        # where a typed parameter would fail the SDK's decoding and retry the task forever.
        self._input: ReleaseInput | None = None
        self._input_refusal: Refused | None = None
        try:
            self._input = parse_payload(ReleaseInput, payload, START_INPUT)
        except BadInput as err:
            self._input_refusal = Refused(str(err), BAD_INPUT)
        except Refused as refusal:  # the codec refused it (see run())
            self._input_refusal = refusal
        # The ledger exists once run() has resolved the policy through the worker's store (a few
        # milliseconds after the start); until then validators and queries refuse with
        # ``release_starting`` (see :attr:`_ledger`).
        self._release_id = (
            self._input.spec.release_id
            if self._input is not None
            else release_id_of(workflow.info().workflow_id)
        )
        self._resolved: Deciders | None = None
        self._integrity_error: str | None = None
        self._changes = 0
        # The status as last committed (without its version): the version moves only when the
        # status does (see ``commit``).
        self._committed = ""
        self._pending: list[asyncio.Task[None]] = []
        self._published: dict[str, Any] = {}
        self._details = ""
        self._audit_confirmed = 0
        # Whether this release signs its audit heads (ANCHOR_PATCH), the last event a head
        # scheduled for signing covers, and whether the release's final head is signed.
        self._anchoring = False
        # Whether verifications count only for the evidence version they were asked for
        # (EVIDENCE_PATCH).
        self._versioned_evidence = False
        self._signed_through = -1
        self._final_head_signed = False
        self._launching = False
        self._reverify = False
        # The deadline whose timer fired last, and the raw clock of the activation it fired in.
        self._reached: datetime | None = None
        self._reached_clock: datetime | None = None

    @property
    def _deciders(self) -> Deciders:
        """The release's deciders, one per decision path, over its ledger."""
        if self._resolved is None:
            raise Refused(
                f"release {self._release_id} is starting; try again in a moment", RELEASE_STARTING
            )
        return self._resolved

    @property
    def _ledger(self) -> Ledger:
        return self._deciders.ledger

    # --- the pipeline ---------------------------------------------------------------------

    @workflow.run
    async def run(self, payload: RawValue = NO_ARGUMENT) -> ReleaseOutcome:
        del payload  # parsed in __init__
        inp = self._input
        if inp is None:
            refusal = self._input_refusal or Refused(f"bad input for {START_INPUT}", BAD_INPUT)
            if refusal.type == UNDECRYPTABLE_PAYLOAD:
                # Sealed with a key this worker lacks (a rotation step skipped): fail the task,
                # which Temporal retries, so the release resumes once a worker has the key.
                raise RuntimeError(refusal.message)
            raise refusal  # malformed, or plaintext while encryption is on: refused for good
        self._anchoring = workflow.patched(ANCHOR_PATCH)
        self._versioned_evidence = workflow.patched(EVIDENCE_PATCH)
        installed = await self._resolve_policy(inp)
        try:
            self._resolved = Deciders.over(Ledger(inp.spec, installed, self.now()))
        except IntegrityError as err:
            self._integrity_error = str(err)
            raise ApplicationError(str(err), type="IntegrityError", non_retryable=True) from None
        ledger = self._ledger
        # What signed requests bind besides the release id: a later release reusing the id is
        # another subject (the same live and on replay).
        ledger.status.first_run_id = workflow.info().first_execution_run_id
        ledger.start(self.now())
        self.commit()
        await self._verify_evidence()
        for stage in ledger.policy.stages:
            if ledger.is_terminal():
                break
            if not ledger.applies(stage):
                ledger.skip_stage(stage, self.now())
                self.commit()
                continue
            await self.until_unblocked(f"to enter {stage.id}", suspended_blocks=False)
            if ledger.is_terminal():
                break
            ledger.enter_stage(stage, self.now())
            self.commit()
            note = await run_stage(self, stage)
            if ledger.is_terminal():
                break
            ledger.finish_stage(stage, self.now(), note)
            self.commit()
            if self._anchoring:
                self._pending.append(
                    asyncio.create_task(self._sign_head(f"stage {stage.id} completed"))
                )
            else:
                self._start_audit_flush()
        if ledger.status.state in (ReleaseState.REJECTED, ReleaseState.WITHDRAWN):
            await self._revoke_everything(ledger.status.outcome)
        await self._settle()
        return ReleaseOutcome(status=ledger.status, audit=ledger.chain.events)

    async def _resolve_policy(self, inp: ReleaseInput) -> InstalledPolicy:
        """The installed policy ``inp`` names, resolved and checked by the worker; the activity
        result pins it in history. A start that carries a policy body, or names no installed
        version, fails here at once: nothing has been granted, published or sent."""
        if inp.policy is not None or inp.policy_sha256 is not None:
            raise Refused(
                "a release names an installed policy (policy_ref: ID@VERSION), never carries one: "
                "install it with `gatekeeper policy install FILE` and start with --policy ID@VERSION",
                BAD_INPUT,
            )
        if inp.policy_ref is not None:
            try:
                parse_policy_ref(inp.policy_ref)
            except InputError as err:
                raise Refused(f"policy_ref: {err}", BAD_INPUT) from None
        try:
            installed: InstalledPolicy = await workflow.execute_activity(
                "resolve_policy",
                ResolvePolicyRequest(release_id=inp.spec.release_id, policy_ref=inp.policy_ref),
                result_type=InstalledPolicy,
                start_to_close_timeout=timeouts.POLICY_TIMEOUT,
                retry_policy=timeouts.POLICY_RETRY,
                summary=f"Resolve policy {inp.policy_ref or '(the default)'}",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                raise Refused(cause.message, cause.type or "policy_not_installed") from None
            raise
        if inp.policy_ref is not None and installed.ref != inp.policy_ref:
            raise ApplicationError(
                f"the store answered {installed.ref} for {inp.policy_ref}",
                type="IntegrityError",
                non_retryable=True,
            )
        # The CLI checks this too, but a raw client need not: the worker decides.
        problems = check_spec_against_policy(inp.spec, installed.policy)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise Refused(
                f"the spec cannot run under policy {installed.ref}: {problems[0].render()}{more}",
                SPEC_NOT_ALLOWED,
            )
        return installed

    # --- what stages ask of the workflow (gatekeeper.stages.StageHost) ------------------------
    #
    # Each stage kind's coroutine lives with its kind in gatekeeper.stages and runs against these
    # methods (plus the clock and waits below); run() dispatches through the registry.

    @property
    def ledger(self) -> Ledger:
        """The release's ledger (refused with ``release_starting`` until the policy resolved)."""
        return self._ledger

    @property
    def partners(self) -> PartnerListDecider:
        """The partner list's steps (its decider's)."""
        return self._deciders.partners

    async def execute(
        self, activity: str, request: Model, result_type: type[M], *, summary: str
    ) -> M:
        """Run one of the pipeline's activities with its timeouts and retry policy."""
        timeout, retry = timeouts.STAGE_ACTIVITIES[activity]
        result: M = await workflow.execute_activity(
            activity,
            request,
            result_type=result_type,
            start_to_close_timeout=timeout,
            retry_policy=retry,
            summary=summary,
        )
        return result

    def set_launching(self, launching: bool) -> None:
        self._launching = launching

    # --- waiting ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The pipeline's clock: ``workflow.now()``, except in the activation where a deadline's
        timer fired, where it is that deadline (see :meth:`sleep_until_change`)."""
        now = workflow.now()
        if self._reached is not None and now == self._reached_clock:
            return self._reached
        return now

    async def sleep_until_change(self, clocks: dict[str, datetime | None]) -> str | None:
        """Sleep until any state change, or until the earliest clock (a durable timer); return
        the name of the clock whose timer fired, or None if a change woke the pipeline.

        **Deadlines cannot drift.** Every wait of the release goes through here, and the rule is:
        *a fired timer is the deadline reached*; "is it time yet" is never derived again from
        ``workflow.now()`` in a way that could start a second timer for the same deadline.

        Why: ``workflow.now()`` is the start time of the workflow task being run, and it is not
        always the same live and on replay. When a worker dies and its release's timer fires
        while the next task waits on the dead worker's sticky queue, a fresh worker that answers
        a status query meanwhile applies the fired timer with the clock of the *previous* task
        (temporalio 1.35, server 1.32; docs/running.md has the reproduction). A loop
        ``while workflow.now() < end: wait_condition(..., timeout=end - now)`` then starts a
        second timer for the same deadline; replay, which sees the later clock, does not, and
        the history no longer replays (TMPRL1100 ... does not handle TimerStarted).

        The pattern, in this one place:

        - The fired deadline is remembered with the raw clock of its activation; for the rest of
          that activation :meth:`now` reads the deadline itself. Every decision the pipeline
          makes after a timer fired (``expire_holds``, ``refresh_gate``, ``window_blockers``,
          ``deadline_passed``, the partner period, reminders, escalation) compares deadlines
          with that value, which is the same live and on replay, and is at or past the deadline,
          so the deadline counts as reached (the ledger compares with ``<=``/``>=``).
        - Whether a timer is started never depends on the clock: a due clock always gets one,
          of at least a millisecond, even if the clock says it is already past.
        - Timer *durations* may differ live and on replay; Temporal does not compare them.
        - A timer that fires while ``workflow.now()`` is still before its deadline can only be
          that lagging clock (a real task starts after the timer fired). The activation then
          fails with :class:`StaleClock`, a workflow *task* failure (not the release's): the
          worker drops the run from its cache and the next task replays it from history with
          the true clock. Without this, the lagging activation's commands would be sent ahead
          of an update delivered in the same task, an order replay does not reproduce.

        Waits in stage coroutines (:mod:`gatekeeper.stages`, through ``StageHost``) are ``while``
        loops around this call that re-read the ledger through :meth:`now`; none keeps its own
        ``workflow.now() < end`` test.
        """
        seen = self._changes
        started = self.now()
        due = [(at, name) for name, at in clocks.items() if at is not None]
        if not due:
            await workflow.wait_condition(lambda: self._changes != seen)
            return None
        at, name = min(due)
        remaining = max(at - workflow.now(), MIN_TIMER)
        try:
            await workflow.wait_condition(
                lambda: self._changes != seen, timeout=remaining, timeout_summary=name
            )
        except TimeoutError:
            if workflow.now() < at:
                # Impossible in a true task (it starts after the timer fired, so at or past
                # ``at``): this activation runs on a clock that lags the history. Fail it so the
                # worker evicts the run and replays it from history with the right clock.
                raise StaleClock(
                    f"the timer of {name} fired but the clock reads {workflow.now().isoformat()}, "
                    f"before {at.isoformat()}: evicting to replay"
                ) from None
            self._reached = max(at, started)
            self._reached_clock = workflow.now()
            return name
        return None

    async def until_unblocked(self, purpose: str, *, suspended_blocks: bool) -> None:
        ledger = self._ledger
        while not ledger.is_terminal():
            ledger.expire_holds(self.now())
            blocked = ledger.is_held() or (suspended_blocks and ledger.status.active_suspensions())
            if not blocked:
                return
            reasons = [h.reason for h in ledger.status.active_holds()]
            if suspended_blocks:
                reasons += [f"order {s.order_id}" for s in ledger.status.active_suspensions()]
            ledger.await_(
                f"the release to resume {purpose} ({'; '.join(reasons)})",
                self.now(),
                roles=["operator"],
            )
            self.commit()
            await self.sleep_until_change({"Hold ends": ledger.next_hold_expiry()})

    # --- side effects ---------------------------------------------------------------------------

    async def _verify_evidence(self) -> bool:
        """Verify the release's evidence as it is now; record the result unless an amend
        changed the evidence meanwhile (a later verification is then on its way, and the
        last to land must not be an older one). Whether the result was recorded."""
        ledger = self._ledger
        spec = ledger.spec
        version = ledger.evidence_version if self._versioned_evidence else None
        try:
            result = await workflow.execute_activity(
                "verify_evidence",
                EvidenceCheckRequest(
                    release_id=spec.release_id, artifact=spec.artifact, evidence=spec.evidence
                ),
                result_type=EvidenceCheckResult,
                start_to_close_timeout=timeouts.EVIDENCE_TIMEOUT,
                retry_policy=timeouts.EVIDENCE_RETRY,
                summary="Verify evidence digests",
            )
        except ActivityError as err:
            if version is not None and not ledger.evidence_current(version):
                return False
            ledger.audit(
                self.now(),
                "gatekeeper",
                "evidence_unverified",
                {"error": str(err.cause or err)},
            )
            self.commit()
            return True
        if not ledger.record_evidence_checks(result, self.now(), version):
            return False
        self.commit()
        return True

    async def _revoke_everything(self, reason: str) -> None:
        ledger = self._ledger
        outstanding = ledger.unrevoked_grants()
        if not outstanding:
            return
        result = await workflow.execute_activity(
            "revoke_partner_access",
            RevokeRequest(
                idempotency_key=f"{ledger.status.release_id}:revoke-all:{ledger.status.state.value}",
                release_id=ledger.status.release_id,
                grant_ids=[],  # every grant the release still holds, however many (the registry has them)
                reason=reason,
                requested_at=self.now(),
            ),
            result_type=RevokeResult,
            start_to_close_timeout=timeouts.ACCESS_TIMEOUT,
            retry_policy=timeouts.ACCESS_RETRY,
            summary=f"Revoke {outstanding} partner grant(s)",
        )
        ledger.record_revocations(result, self.now(), reason)
        self.commit()

    def _send(self, notice: Notice) -> None:
        ledger = self._ledger
        recipients = routing.recipients_for(
            ledger.policy, notice.event, concerned=notice.concerned, roles=notice.roles
        )
        if not recipients:
            return
        notification = Notification(
            idempotency_key=f"{ledger.status.release_id}:{notice.event.value}:{notice.audit_seq}",
            release_id=ledger.status.release_id,
            event=notice.event,
            stage=notice.stage,
            subject=notice.subject,
            body=notice.body,
            action_needed=notice.action_needed,
            due=notice.due,
            occurred_at=self.now(),
        )
        # Recipients are people and whole cohorts (the activity expands a cohort to its
        # partners), so one activity per notice is the rule; a roster too large for one request
        # is split. Delivery keys do not depend on the batch, so batching never re-sends.
        batches = [
            recipients[start : start + timeouts.NOTIFY_BATCH]
            for start in range(0, len(recipients), timeouts.NOTIFY_BATCH)
        ]
        for number, batch in enumerate(batches, start=1):
            # Channels travel as names only: what they are is the worker's configuration.
            request = NotifyRequest(notification=notification, recipients=batch)
            who = sorted({r.id for r in batch})
            summary = f"Notify {len(who)} recipient(s): {notice.event.value}"
            if len(batches) > 1:
                summary += f" (batch {number} of {len(batches)})"
            self._pending.append(asyncio.create_task(self._deliver(request, summary)))

    async def _deliver(self, request: NotifyRequest, summary: str) -> None:
        key = request.notification.idempotency_key
        failure: dict[str, Any]
        try:
            # The result is counts (see NotifySummary), and the channel names the worker does
            # not define: nothing was sent on those, which is a failed notification.
            result = await workflow.execute_activity(
                "notify_stakeholders",
                request,
                result_type=NotifySummary,
                start_to_close_timeout=timeouts.NOTIFY_TIMEOUT,
                heartbeat_timeout=timeouts.NOTIFY_HEARTBEAT_TIMEOUT,
                retry_policy=timeouts.NOTIFY_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            failure = {"key": key, "error": str(err.cause or err)}
        else:
            if not result.unconfigured:
                return
            names = ", ".join(result.unconfigured)
            failure = {
                "key": key,
                "error": f"channel(s) {names} are not defined in the worker's configuration; "
                "nothing was sent on them",
                "unconfigured_channels": list(result.unconfigured),
            }
        self._ledger.audit(self.now(), "gatekeeper", "notification_failed", failure)
        self.commit()

    def _start_audit_flush(self) -> None:
        self._pending.append(asyncio.create_task(self._flush_audit()))

    async def _flush_audit(self) -> None:
        # Always from the last *confirmed* event: overlapping flushes may repeat events (the store
        # skips those) but can never leave a gap.
        start = self._audit_confirmed
        events: list[AuditEvent] = self._ledger.chain.events[start:]
        if not events:
            return
        result = await workflow.execute_activity(
            "record_audit_events",
            AuditFlushRequest(release_id=self._ledger.status.release_id, events=events),
            result_type=AuditFlushResult,
            start_to_close_timeout=timeouts.AUDIT_TIMEOUT,
            retry_policy=timeouts.AUDIT_RETRY,
            summary=f"Record audit events {start}–{start + len(events) - 1}",
        )
        # What the store says it holds, not what this flush sent: after a crash the replayed
        # order of overlapping flushes and head signings may differ from the live one.
        stored = start + len(events) if result.length is None else result.length
        self._audit_confirmed = max(self._audit_confirmed, stored)

    async def _sign_head(self, reason: str) -> None:
        """Store the events not stored yet, have the worker's key sign the chain's head and
        anchor it outside the workflow (one activity); the store's answer moves the "stored up
        to" mark."""
        ledger = self._ledger
        chain = ledger.chain.events
        start, head = self._audit_confirmed, chain[-1]
        first = min(self._signed_through + 1, head.seq)
        self._signed_through = head.seq
        request = AnchorRequest(
            release_id=ledger.status.release_id,
            first_run_id=workflow.info().first_execution_run_id,
            events=chain[start:],
            seq=head.seq,
            hash=head.hash,
            reason=reason,
            first=first,
            # Only the links the events sent do not give (the activity derives the others).
            links=[e.hash[:LINK_LENGTH] for e in chain[first : max(first, start)]],
        )
        signature = await workflow.execute_activity(
            "anchor_audit_head",
            request,
            result_type=HeadSignature,
            start_to_close_timeout=timeouts.AUDIT_TIMEOUT,
            retry_policy=timeouts.AUDIT_RETRY,
            summary=f"Sign and anchor the audit head at event {head.seq} ({reason})",
        )
        stored = head.seq + 1 if signature.stored_length is None else signature.stored_length
        self._audit_confirmed = max(self._audit_confirmed, stored)
        # The signed head lives in the anchor table (and the dossier, read from there), not in
        # the chain: the chain's content must not depend on when this continuation runs
        # relative to update handlers, which is not the same live and on replay when a workflow
        # task without commands sits between them (an event appended here landed at another
        # position after a crash, and the audit store then refused the replayed chain).

    async def _settle(self) -> None:
        """Finish every handler, notification and audit write before the workflow ends."""
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            pending, self._pending = self._pending, []
            if pending:
                await asyncio.gather(*pending)
                continue
            if self._anchoring and not self._final_head_signed:
                self._final_head_signed = True
                await self._sign_head(f"release {self._ledger.status.state.value}")
                continue
            if self._audit_confirmed < len(self._ledger.chain):
                await self._flush_audit()
                continue
            if workflow.all_handlers_finished() and not self._pending:
                return

    # --- after every change -----------------------------------------------------------------------

    def commit(self) -> None:
        """Send what the ledger wants said, refresh what operators see, wake the pipeline."""
        self._changes += 1
        # The version counts changes of the status, not commits: how many times the workflow
        # wakes and commits an unchanged status depends on how the SDK splits history into
        # activations, which is not the same for a worker that ran the release live and one that
        # replays it (or caught a cached copy up), so counting commits made a status answered from
        # replay differ from the live one (docs/running.md, "A worker killed while ...").
        status = self._ledger.status
        committed = status.model_dump_json(exclude={"status_version"})
        if committed != self._committed:
            self._committed = committed
            status.status_version += 1
        for notice in self._ledger.take_notices():
            self._send(notice)
        self._publish()

    def _publish(self) -> None:
        status = self._ledger.status
        awaiting = status.awaiting
        values: dict[str, Any] = {
            sa.RELEASE_STAGE.name: status.stage or "",
            sa.RELEASE_STATE.name: status.state.value,
            sa.AWAITING_ROLES.name: list(awaiting.roles) if awaiting else [],
            sa.GOVERNMENT_WINDOW_ENDS_AT.name: status.government.window_ends_at,
        }
        changed = [k for k, v in values.items() if self._published.get(k, object()) != v]
        if changed:
            pairs: list[Any] = []
            for key in (
                sa.RELEASE_STAGE,
                sa.RELEASE_STATE,
                sa.AWAITING_ROLES,
                sa.GOVERNMENT_WINDOW_ENDS_AT,
            ):
                if key.name not in changed:
                    continue
                value = values[key.name]
                pairs.append(key.value_unset() if value is None else key.value_set(value))
            workflow.upsert_search_attributes(pairs)
            self._published.update(values)
        details = current_details(status)
        if details != self._details:
            workflow.set_current_details(details)
            self._details = details

    # --- updates ----------------------------------------------------------------------------------
    #
    # Every update takes one plain JSON argument and parses it itself: the parameter is a RawValue,
    # so the SDK hands over the payload as sent and never fails decoding it. The validator parses
    # (a malformed payload is refused there in one line, rule ``bad_input``, leaving no trace in
    # history), then checks the rules; the handler parses again (the same deterministic function;
    # validators do not run on replay) and applies. Every refusal is a ``Refused``: non-retryable,
    # typed by its rule, written to history without a stack trace (gatekeeper.failures).

    def _refusal(self, refusal: Refusal) -> Refused:
        return Refused(refusal.message, refusal.rule.value)

    def _parse(self, update: str, model: type[M], payload: RawValue) -> M:
        try:
            return parse_payload(model, payload, update)
        except BadInput as err:
            raise Refused(str(err), BAD_INPUT) from None

    def _check(
        self, update: str, model: type[M], payload: RawValue, validate: Callable[[M], None]
    ) -> None:
        if self._integrity_error is not None:
            raise Refused(self._integrity_error, "IntegrityError")
        request = self._parse(update, model, payload)
        try:
            validate(request)
            self._authenticate(update, payload)
        except Refusal as refusal:
            raise self._refusal(refusal) from None

    def _authenticate(self, update: str, payload: RawValue) -> None:
        """Refuse a request not signed by a registered, currently valid key of its actor over
        what this release holds now (``gatekeeper.signed_requests``). Validators never run on
        replay, so reading the worker's live key directory here keeps histories deterministic."""
        ledger = self._ledger
        request = json.loads(raw_data(payload))
        task_queue = workflow.info().task_queue
        with workflow.unsafe.sandbox_unrestricted():
            signed_requests.check(
                action=update,
                request=request,
                expected=signed_requests.release_binding(ledger.status),
                directory=authority.directory_for(task_queue),
                now=datetime.now(UTC),  # the worker's clock: see signed_requests.check
                max_age=ledger.policy.signature_max_age,
                used_nonces=ledger.used_nonces,
                unsigned_allowed=authority.unsigned_allowed(task_queue),
            )

    def _screened(
        self,
        update: str,
        model: type[M],
        payload: RawValue,
        validate: Callable[[M], None],
        change: Callable[[Ledger, M], object],
        kind: Callable[[M], str] | None = None,
    ) -> None:
        """``_check``, then the request budget (``Ledger.screen``): refuse, unrecorded,
        what is past its budget, would change nothing, or is padded past its size."""
        size = len(raw_data(payload))

        def both(req: M) -> None:
            validate(req)
            compact = len(req.model_dump_json())
            if size > 2 * compact + PADDING_BYTES:
                raise refuse(
                    Rule.REQUEST_TOO_LARGE,
                    f"{update}: the payload is {size // 1024} KB for {compact} bytes of request",
                )
            self._ledger.screen(
                update,
                kind(req) if kind else update,
                size - signature_size(req),
                lambda ledger: change(ledger, req),
            )

        self._check(update, model, payload, both)

    def _apply(
        self,
        request: str,
        actor: str,
        body: Any,
        change: Callable[[], str],
        payload: RawValue,
    ) -> UpdateResult:
        ledger = self._ledger
        # The validator checked the signature; the handler (which also runs on replay) only
        # records it, from the request itself: the accepted request's first audit event keeps
        # the signed statement, and the nonce is spent.
        raw = json.loads(raw_data(payload))
        ledger.attesting = signed_requests.attestation(request, raw)
        try:
            message = change()
        except Refusal as refusal:
            ledger.attesting = None
            # Recorded in the audit trail while the ``refused`` budget lasts; past it the
            # validator refuses such requests itself, so only a race reaches here unrecorded.
            if refusal.audited and not ledger.spent("refused"):
                record_refusal(
                    ledger, refusal, workflow.now(), actor, request, body.model_dump(mode="json")
                )
            ledger.charge("refused", content_size(body))
            self.commit()
            raise self._refusal(refusal) from None
        ledger.attesting = None
        nonce = signed_requests.nonce_of(raw)
        if nonce is not None:
            ledger.used_nonces.add(nonce)
        ledger.charge(BUDGET_OF[request], content_size(body))
        self.commit()
        return self._result(message)

    def _result(self, message: str) -> UpdateResult:
        status = self._ledger.status
        return UpdateResult(
            message=message,
            release_id=status.release_id,
            state=status.state,
            stage=status.stage,
            status_version=status.status_version,
        )

    def _decide(self, kind: DecisionKind, payload: RawValue) -> UpdateResult:
        req = self._parse(kind.value, DecisionRequest, payload)
        return self._apply(
            kind.value,
            req.decider,
            req,
            lambda: self._deciders.review.apply_decision(kind, req, workflow.now()),
            payload,
        )

    @workflow.update
    def approve(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Approve the current gate as one of its roles."""
        return self._decide(DecisionKind.APPROVE, payload)

    @approve.validator
    def _validate_approve(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screen_decision(DecisionKind.APPROVE, payload)

    @workflow.update
    def reject(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Reject at the current gate: the release ends, every grant it made is revoked."""
        return self._decide(DecisionKind.REJECT, payload)

    @reject.validator
    def _validate_reject(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screen_decision(DecisionKind.REJECT, payload)

    @workflow.update
    def request_changes(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Ask the submitter for changes; the gate waits for an amend."""
        return self._decide(DecisionKind.REQUEST_CHANGES, payload)

    @request_changes.validator
    def _validate_request_changes(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screen_decision(DecisionKind.REQUEST_CHANGES, payload)

    def _screen_decision(self, kind: DecisionKind, payload: RawValue) -> None:
        self._screened(
            kind.value,
            DecisionRequest,
            payload,
            lambda req: self._deciders.review.validate_decision(kind, req, workflow.now()),
            lambda ledger, req: ReviewDecider(ledger).apply_decision(kind, req, workflow.now()),
        )

    @workflow.update
    async def amend(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Change evidence or the artifact digest; approvals that covered a change lapse."""
        req = self._parse("amend", AmendRequest, payload)
        result = self._apply("amend", req.by, req, lambda: self._amend(req), payload)
        if self._reverify:
            self._reverify = False
            recorded = await self._verify_evidence()
            result = self._result(result.message)
            failures = self._ledger.evidence_failures()
            if not recorded:
                result.message += (
                    "; a later amend changed the evidence again (its verification is the one "
                    "that counts)"
                )
            elif failures:
                result.message += f"; evidence still failing: {', '.join(failures)}"
        return result

    def _amend(self, req: AmendRequest) -> str:
        message, reverify = self._deciders.amend.apply_amend(req, workflow.now())
        self._reverify = reverify
        return message

    @amend.validator
    def _validate_amend(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "amend",
            AmendRequest,
            payload,
            lambda req: self._deciders.amend.validate_amend(req, workflow.now()),
            lambda ledger, req: AmendDecider(ledger).apply_amend(req, workflow.now()),
        )

    @workflow.update
    def record_government_response(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Record what the government said: cleared, delay requested, concern raised/resolved."""
        req = self._parse("record_government_response", GovernmentResponse, payload)
        return self._apply(
            "record_government_response",
            req.by,
            req,
            lambda: self._deciders.government.apply_government(req, workflow.now()),
            payload,
        )

    @record_government_response.validator
    def _validate_government(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "record_government_response",
            GovernmentResponse,
            payload,
            lambda req: self._deciders.government.validate_government(req, workflow.now()),
            lambda ledger, req: GovernmentDecider(ledger).apply_government(req, workflow.now()),
            kind=lambda req: req.kind.value,
        )

    @workflow.update
    def hold(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Operator hold: nothing advances until resumed (or ``until`` passes)."""
        req = self._parse("hold", OperatorRequest, payload)
        return self._apply(
            "hold",
            req.by,
            req,
            lambda: self._deciders.operators.apply_hold(req, workflow.now()),
            payload,
        )

    @hold.validator
    def _validate_hold(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "hold",
            OperatorRequest,
            payload,
            self._operator_check,
            lambda ledger, req: OperatorDecider(ledger).apply_hold(req, workflow.now()),
        )

    @workflow.update
    def resume(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Lift an operator (or missed-deadline) hold."""
        req = self._parse("resume", OperatorRequest, payload)
        return self._apply(
            "resume",
            req.by,
            req,
            lambda: self._deciders.operators.apply_resume(req, workflow.now()),
            payload,
        )

    @resume.validator
    def _validate_resume(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "resume",
            OperatorRequest,
            payload,
            lambda req: self._deciders.operators.validate_operator(req, workflow.now()),
            lambda ledger, req: OperatorDecider(ledger).apply_resume(req, workflow.now()),
        )

    @workflow.update
    def withdraw(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """End the release: every grant it made is revoked and everyone is told."""
        req = self._parse("withdraw", OperatorRequest, payload)
        return self._apply(
            "withdraw",
            req.by,
            req,
            lambda: self._deciders.operators.apply_withdraw(req, workflow.now()),
            payload,
        )

    @withdraw.validator
    def _validate_withdraw(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "withdraw",
            OperatorRequest,
            payload,
            self._operator_check,
            lambda ledger, req: OperatorDecider(ledger).apply_withdraw(req, workflow.now()),
        )

    def _operator_check(self, req: OperatorRequest) -> None:
        self._deciders.operators.validate_operator(req, workflow.now())
        if self._launching:
            raise refuse(
                Rule.LAUNCH_IN_PROGRESS,
                "the launch is being published right now; ask again once it has finished",
            )

    @workflow.update
    def delegate(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Lend a gate role to another roster member until a time."""
        req = self._parse("delegate", DelegationRequest, payload)
        return self._apply(
            "delegate",
            req.by,
            req,
            lambda: self._deciders.delegation.apply_delegation(req, workflow.now()),
            payload,
        )

    @delegate.validator
    def _validate_delegate(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "delegate",
            DelegationRequest,
            payload,
            lambda req: self._deciders.delegation.validate_delegation(req, workflow.now()),
            lambda ledger, req: DelegationDecider(ledger).apply_delegation(req, workflow.now()),
        )

    @workflow.update
    def revoke_delegation(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """The delegator takes back a role they lent; it stops counting at once."""
        req = self._parse("revoke_delegation", DelegationRevocation, payload)
        return self._apply(
            "revoke_delegation",
            req.by,
            req,
            lambda: self._deciders.delegation.apply_revocation(req, workflow.now()),
            payload,
        )

    @revoke_delegation.validator
    def _validate_revoke_delegation(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "revoke_delegation",
            DelegationRevocation,
            payload,
            lambda req: self._deciders.delegation.validate_revocation(req, workflow.now()),
            lambda ledger, req: DelegationDecider(ledger).apply_revocation(req, workflow.now()),
        )

    @workflow.update
    def attest_authorship(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """An author (for themselves) or a reviewer attests who wrote an evidence item."""
        req = self._parse("attest_authorship", AuthorshipAttestation, payload)
        return self._apply(
            "attest_authorship",
            req.by,
            req,
            lambda: self._deciders.authorship.apply_authorship(req, workflow.now()),
            payload,
        )

    @attest_authorship.validator
    def _validate_attest_authorship(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "attest_authorship",
            AuthorshipAttestation,
            payload,
            lambda req: self._deciders.authorship.validate_authorship(req, workflow.now()),
            lambda ledger, req: AuthorshipDecider(ledger).apply_authorship(req, workflow.now()),
        )

    @workflow.update
    def suspend_access(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """An access order suspends this release's access in a scope; the stage is kept."""
        req = self._parse("suspend_access", AccessSuspensionRequest, payload)
        return self._apply(
            "suspend_access",
            req.by,
            req,
            lambda: self._deciders.suspensions.apply_suspension(req, workflow.now()),
            payload,
        )

    @suspend_access.validator
    def _validate_suspend(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "suspend_access",
            AccessSuspensionRequest,
            payload,
            lambda req: self._deciders.suspensions.validate_suspension(req, workflow.now()),
            lambda ledger, req: SuspensionDecider(ledger).apply_suspension(req, workflow.now()),
        )

    @workflow.update
    def restore_access(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """The order that suspended access was lifted (with the safeguards it required)."""
        req = self._parse("restore_access", AccessRestoreRequest, payload)
        return self._apply(
            "restore_access",
            req.by,
            req,
            lambda: self._deciders.suspensions.apply_restore(req, workflow.now()),
            payload,
        )

    @restore_access.validator
    def _validate_restore(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "restore_access",
            AccessRestoreRequest,
            payload,
            lambda req: self._deciders.suspensions.validate_restore(req, workflow.now()),
            lambda ledger, req: SuspensionDecider(ledger).apply_restore(req, workflow.now()),
        )

    @workflow.update
    def approve_partners(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """The government liaison approves or denies entries of the proposed partner list."""
        req = self._parse("approve_partners", PartnerApprovalRequest, payload)
        return self._apply(
            "approve_partners",
            req.by,
            req,
            lambda: self._deciders.partners.apply_partner_approval(req, workflow.now()),
            payload,
        )

    @approve_partners.validator
    def _validate_approve_partners(self, payload: RawValue = NO_ARGUMENT) -> None:
        self._screened(
            "approve_partners",
            PartnerApprovalRequest,
            payload,
            lambda req: self._deciders.partners.validate_partner_approval(req, workflow.now()),
            lambda ledger, req: PartnerListDecider(ledger).apply_partner_approval(
                req, workflow.now()
            ),
        )

    # --- the start and queries ------------------------------------------------------------------

    @workflow.update(
        name=STARTED_UPDATE, unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON
    )
    async def wait_started(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Answer once the release has resolved its policy and reached its first wait (or ended):
        ``release start`` sends this with the start (Update-with-Start) instead of polling. A
        start the worker refuses ends the release first; the update then fails with it (the
        handler is abandoned, and the caller reads the one-line refusal from the result)."""
        del payload  # takes nothing; an argument sent anyway changes nothing
        await workflow.wait_condition(self._started)
        return self._result("started")

    @wait_started.validator
    def _validate_wait_started(self, payload: RawValue = NO_ARGUMENT) -> None:
        if self._input_refusal is not None:
            raise self._input_refusal
        if self._started():  # it answers the start it came with; more would only fill history
            raise Refused(
                f"release {self._release_id} has started; read it with the get_status query",
                "already_started",
            )

    def _started(self) -> bool:
        """Whether the pipeline has reached its first wait (or ended) under its policy."""
        if self._resolved is None:
            return False
        ledger = self._resolved.ledger
        return ledger.status.awaiting is not None or ledger.is_terminal()

    @workflow.query
    def is_starting(self) -> bool:
        """Whether the release is still resolving its policy (``get_status`` refuses until then)."""
        return self._resolved is None

    @workflow.query
    def get_status(self) -> ReleaseStatus:
        """The whole release: stage, state, what is awaited and from whom, approvals, grants."""
        return self._ledger.status

    @workflow.query
    def get_audit(self) -> list[AuditEvent]:
        """The audit chain so far (``gatekeeper audit export`` reads it)."""
        return self._ledger.chain.events

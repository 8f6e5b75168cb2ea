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
from datetime import datetime
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
# - cryptography (and gatekeeper.signing, .statements and .webauthn, which hold it): a pyo3 module loads
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

    import gatekeeper.identity.authority  # validators read its key directory
    import gatekeeper.identity.heads  # the signed heads (workflows.effects)
    import gatekeeper.identity.keys
    import gatekeeper.models.policy  # the stage kinds' models (the Stage union)
    import gatekeeper.models.spec
    import gatekeeper.signing
    import gatekeeper.statements  # signed requests (workflows.requests)
    import gatekeeper.webauthn  # passkey assertions: holds cryptography's ECDSA
    import gatekeeper.yamlfile  # noqa: F401
    from gatekeeper.codec_refusals import UNDECRYPTABLE_PAYLOAD
    from gatekeeper.errors import BadInput, InputError
    from gatekeeper.failures import Refused
    from gatekeeper.models.audit import AuditEvent
    from gatekeeper.models.base import Model
    from gatekeeper.models.enums import ReleaseState
    from gatekeeper.models.installed import (
        InstalledPolicy,
        ResolvePolicyRequest,
        parse_policy_ref,
    )
    from gatekeeper.models.io import MAX_ORDERS_FOUND, OrdersInForce, OrdersInForceRequest
    from gatekeeper.models.messages import AmendRequest
    from gatekeeper.models.payloads import BAD_INPUT, NO_ARGUMENT, parse_payload
    from gatekeeper.models.status import (
        STARTED_UPDATE,
        ReleaseHead,
        ReleaseInput,
        ReleaseOutcome,
        ReleaseStatus,
        UpdateResult,
    )

# The decision logic, imported and checked by the sandbox for each run (no I/O, clock or
# randomness at import or in use): the ledger and its deciders, the rules, the spec's checks,
# routing, request authentication, the stage kinds, the timeouts and the details; and this
# workflow's own parts: its side effects, its requests and its waits.
import gatekeeper.search_attributes as sa
from gatekeeper.ids import release_id_of
from gatekeeper.ledger.deciders import AmendDecider, Deciders, PartnerListDecider
from gatekeeper.ledger.state import IntegrityError, Ledger
from gatekeeper.spec import check_spec_against_policy
from gatekeeper.stages import run_stage
from gatekeeper.status_details import current_details
from workflows import timeouts
from workflows.effects import Effects
from workflows.requests import Requests, request_update
from workflows.updates import UPDATES
from workflows.waiting import MIN_TIMER, StaleClock, Waits

__all__ = ["MIN_TIMER", "NO_ARGUMENT", "ModelReleaseWorkflow", "StaleClock"]

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
#: The patch under which (issue 14) a held release awaits ``operator`` wherever it is held, the
#: status's ``awaiting.since`` is when the awaited parties were first awaited at the stage, and
#: the release keeps ``AwaitingSince`` and ``ReleaseOutcome`` current (and ``GovernmentWindowEndsAt``
#: at the clearance once a window is cleared early). Releases started before upsert as they did.
AWAITING_PATCH = "awaiting-operator-and-since"
#: The patch under which a wait woken by a change keeps its deadline's timer running when the
#: deadline did not move (one timer per distinct deadline, workflows.waiting). Releases started
#: before start a new timer at every wake, as they did.
TIMER_PATCH = "one-timer-per-deadline"
#: The patch under which a request refused in its handler (and recorded in the audit trail) is
#: stored at once by an activity whose summary says it was refused, so the Temporal UI's
#: timeline tells it from an accepted one (workflows.effects).
REFUSAL_PATCH = "refusals-in-timeline"
#: The patch under which a ``foreign_persons`` order is recorded as enforced per person (issue
#: 14): the release goes on granting and launching, and access checks deny the persons it covers.
#: Releases started before it (no marker) wait for such an order's lift, as they did.
PER_PERSON_ORDERS_PATCH = "per-person-orders"
#: The patch under which (issue 14) the release reads the organisation-wide orders covering its
#: model from the registry itself before granting partner access and before launching, and
#: records each it does not hold (a release started after an order's sweeps is held as one the
#: order reached; :meth:`ModelReleaseWorkflow.find_orders`). Releases started before it rely on
#: the order's updates alone, as they did.
ORDERS_FOUND_PATCH = "release-finds-orders"
#: The patch under which (issue 16) a release costs what it must in Temporal: the notices one
#: workflow task raises go out in one ``notify_stakeholders`` activity (workflows.effects), and
#: the search attributes are upserted once per workflow task, with only the values that changed
#: since the last upsert. It also stands for every patch above: a release started under it
#: records this one marker (one ``TemporalChangeVersion`` upsert) instead of one per patch, and
#: behaves as if each were present. Releases started before it take each patch as they did.
COST_PATCH = "release-costs-what-it-must"
#: The patches :data:`COST_PATCH` stands for (all of them present in a release started under it).
COVERED_PATCHES = (
    ANCHOR_PATCH,
    EVIDENCE_PATCH,
    AWAITING_PATCH,
    TIMER_PATCH,
    REFUSAL_PATCH,
    ORDERS_FOUND_PATCH,
    PER_PERSON_ORDERS_PATCH,
)


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
        # The status as last committed (without its version): the version moves only when the
        # status does (see ``commit``).
        self._committed = ""
        self._published: dict[str, Any] = {}
        self._details = ""
        self._launching = False
        self._reverify = False
        self._finds_orders = False
        # Whether search attributes are upserted once per workflow task (COST_PATCH), and the
        # pending upsert of this task.
        self._coalesced = False
        self._upsert: asyncio.Task[None] | None = None
        # The pipeline's clock and waits, its side effects, and its requests' screening.
        self._waits = Waits()
        self._effects = Effects(self)
        self._requests = Requests(self)

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

    @property
    def deciders(self) -> Deciders:
        """The release's deciders (refused with ``release_starting`` until the policy resolved)."""
        return self._deciders

    @property
    def integrity_error(self) -> str | None:
        """Why the release's policy and spec failed their integrity check, if they did."""
        return self._integrity_error

    @property
    def launching(self) -> bool:
        """Whether the launch is being published (operators' hold and withdraw wait meanwhile)."""
        return self._launching

    @property
    def requests(self) -> Requests:
        """The screening every request update goes through."""
        return self._requests

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
        patched = self._patched
        self._coalesced = self._effects.batched_notices = workflow.patched(COST_PATCH)
        if self._coalesced:
            # What the start set (``release start`` sets ReleaseState) is published already,
            # and what it left unset needs no upsert to stay unset.
            self._published = sa.started_values(workflow.info().typed_search_attributes)
        self._effects.anchoring = patched(ANCHOR_PATCH)
        self._effects.versioned_evidence = patched(EVIDENCE_PATCH)
        operators_awaited = patched(AWAITING_PATCH)
        self._waits.keep_timers = patched(TIMER_PATCH)
        self._effects.refusals_shown = patched(REFUSAL_PATCH)
        self._finds_orders = patched(ORDERS_FOUND_PATCH)
        installed = await self._resolve_policy(inp)
        try:
            self._resolved = Deciders.over(Ledger(inp.spec, installed, self.now()))
        except IntegrityError as err:
            self._integrity_error = str(err)
            raise ApplicationError(str(err), type="IntegrityError", non_retryable=True) from None
        ledger = self._ledger
        ledger.operators_awaited = operators_awaited
        ledger.per_person_orders = patched(PER_PERSON_ORDERS_PATCH)
        # What signed requests bind besides the release id: a later release reusing the id is
        # another subject (the same live and on replay).
        ledger.status.first_run_id = workflow.info().first_execution_run_id
        ledger.start(self.now())
        self.commit()
        await self._effects.verify_evidence()
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
            self._waits.drop_timers()  # the stage's clocks that never fired
            if ledger.is_terminal():
                break
            ledger.finish_stage(stage, self.now(), note)
            self.commit()
            self._effects.stage_completed(stage.id)
        self._waits.drop_timers()
        if ledger.status.state in (ReleaseState.REJECTED, ReleaseState.WITHDRAWN):
            await self._effects.revoke_everything(ledger.status.outcome)
        await self._effects.settle()
        # The chain is in the audit store by now (settle() waits for every flush and the final
        # signed head) and the status names it (audit_length, audit_head): the result does not
        # carry it again. No patch: a completion's payload is not compared on replay, so a
        # history that ended with the chain in its result replays to this shorter result.
        return ReleaseOutcome(status=ledger.status)

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched(patch_id)``, except under :data:`COST_PATCH`, which stands for it
        (no marker of its own)."""
        if self._coalesced:
            assert patch_id in COVERED_PATCHES, patch_id
            return True
        return workflow.patched(patch_id)

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

    async def find_orders(self, purpose: str) -> None:
        """Read the orders covering the release's model from the registry and record each it
        does not hold (``SuspensionDecider.record_found``), before ``purpose`` (granting,
        launching). An order's sweeps reach the releases running when it is applied; a release
        started later learns the order here, so it is held all the same. Orders it holds are
        read too: one the registry has lifted is restored (its restore may have been lost). When
        an order was newly recorded the registry is read once more for it, so a lift that came
        between the read and the record (its restore refused: the release did not hold the
        order yet) is not missed."""
        if not self._finds_orders:
            return
        ledger = self._ledger
        recheck = [s.order_id for s in ledger.status.orders_in_force()]
        for _ in range(2):
            if ledger.is_terminal():
                return
            found = await self.execute(
                "find_orders_in_force",
                OrdersInForceRequest(
                    release_id=ledger.spec.release_id,
                    model=ledger.spec.model.name,
                    recheck=recheck[:MAX_ORDERS_FOUND],
                ),
                OrdersInForce,
                summary=f"Find the access orders covering {ledger.spec.model.name} {purpose}",
            )
            recorded = self._deciders.suspensions.record_found(found, self.now())
            self.commit()
            if not recorded:
                return
            recheck = recorded

    def set_launching(self, launching: bool) -> None:
        self._launching = launching

    def refusal_recorded(self, summary: str) -> None:
        self._effects.refusal_recorded(summary)

    # --- waiting (workflows.waiting) -------------------------------------------------------

    def now(self) -> datetime:
        """The pipeline's clock: ``workflow.now()``, except in the activation where a deadline's
        timer fired, where it is that deadline (see :meth:`Waits.sleep_until_change`)."""
        return self._waits.now()

    async def sleep_until_change(self, clocks: dict[str, datetime | None]) -> str | None:
        """Sleep until any state change, or until the earliest clock (a durable timer); return
        the name of the clock whose timer fired, or None if a change woke the pipeline. Every
        wait of the release goes through here: :meth:`Waits.sleep_until_change` says why
        deadlines cannot drift."""
        return await self._waits.sleep_until_change(clocks)

    async def until_unblocked(self, purpose: str, *, suspended_blocks: bool) -> None:
        ledger = self._ledger
        while not ledger.is_terminal():
            ledger.expire_holds(self.now())
            blocked = ledger.is_held() or (suspended_blocks and ledger.status.active_suspensions())
            if not blocked:
                self._waits.drop_timers()
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

    # --- after every change -----------------------------------------------------------------------

    def commit(self) -> None:
        """Send what the ledger wants said, refresh what operators see, wake the pipeline."""
        self._waits.changed()
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
            self._effects.send(notice)
        self._publish()

    def _publish(self) -> None:
        if self._coalesced:
            if self._upsert is None:
                self._upsert = asyncio.create_task(self._publish_at_task_end())
                self._effects.pending.append(self._upsert)
        else:
            self._upsert_changed()
            self._describe()

    def _describe(self) -> None:
        """Set the details the Temporal UI shows (the status as Markdown) if they changed."""
        details = current_details(self._ledger.status)
        if details != self._details:
            workflow.set_current_details(details)
            self._details = details

    async def _publish_at_task_end(self) -> None:
        """Upsert what changed once the workflow task's work is done (a condition is checked
        only when nothing else is ready to run): a step that moves the stage and what is
        awaited through several commits upserts the net change once, and a value that went
        and came back within the task is not upserted at all."""
        await workflow.wait_condition(lambda: True)
        self._upsert = None
        self._upsert_changed()
        # The details too: rendering them is the costliest part of publishing (a few percent of
        # a release's worker CPU), and what the UI shows is read only once the task completes.
        self._describe()

    def _upsert_changed(self) -> None:
        status = self._ledger.status
        issue_14 = self._ledger.operators_awaited
        values = sa.current_values(status, issue_14=issue_14)
        changed = [k for k, v in values.items() if self._published.get(k, object()) != v]
        if changed:
            pairs: list[Any] = []
            for key in sa.KEPT_CURRENT if issue_14 else sa.KEPT_CURRENT_BEFORE_14:
                if key.name not in changed:
                    continue
                value = values[key.name]
                pairs.append(key.value_unset() if value is None else key.value_set(value))
            workflow.upsert_search_attributes(pairs)
            self._published.update(values)

    # --- updates (workflows.requests screens them; workflows.updates declares them) ----------

    approve = request_update(UPDATES["approve"])
    reject = request_update(UPDATES["reject"])
    request_changes = request_update(UPDATES["request_changes"])

    @workflow.update
    async def amend(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:
        """Change evidence or the artifact digest; approvals that covered a change lapse."""
        req = self._requests.parse("amend", AmendRequest, payload)
        result = self._requests.apply("amend", req.by, req, lambda: self._amend(req), payload)
        if self._reverify:
            self._reverify = False
            recorded = await self._effects.verify_evidence()
            result = self._requests.result(result.message)
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
        self._requests.screened(
            "amend",
            AmendRequest,
            payload,
            lambda req: self._deciders.amend.validate_amend(req, workflow.now()),
            lambda ledger, req: AmendDecider(ledger).apply_amend(req, workflow.now()),
        )

    record_government_response = request_update(UPDATES["record_government_response"])
    hold = request_update(UPDATES["hold"])
    resume = request_update(UPDATES["resume"])
    withdraw = request_update(UPDATES["withdraw"])
    delegate = request_update(UPDATES["delegate"])
    revoke_delegation = request_update(UPDATES["revoke_delegation"])
    attest_authorship = request_update(UPDATES["attest_authorship"])
    suspend_access = request_update(UPDATES["suspend_access"])
    restore_access = request_update(UPDATES["restore_access"])
    approve_partners = request_update(UPDATES["approve_partners"])

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
        return self._requests.result("started")

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
    def get_head(self) -> ReleaseHead:
        """Where the release is, in a few hundred bytes: its status's version, stage, state and
        what it awaits, and what a signed request binds (pollers and signers read this, and
        ``get_status`` only when they need the whole release)."""
        return ReleaseHead.of(self._ledger.status)

    @workflow.query
    def get_audit(self) -> list[AuditEvent]:
        """The audit chain so far (``gatekeeper audit export`` reads it)."""
        return self._ledger.chain.events

"""The release's side effects: evidence checks, revocations, notifications, audit writes and
signed heads, each an activity whose result the workflow records in its ledger.

``ModelReleaseWorkflow`` holds one :class:`Effects` over itself (an :class:`EffectHost`). The
order of the activities it starts is the order of the calls the workflow makes on it; histories
replay only while that order holds (tests/test_replay.py).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Protocol

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from gatekeeper.failures import cause_message
    from gatekeeper.identity.heads import LINK_LENGTH, AnchorRequest, HeadSignature
    from gatekeeper.models.audit import AuditEvent
    from gatekeeper.models.io import (
        AuditFlushRequest,
        AuditFlushResult,
        EvidenceCheckRequest,
        EvidenceCheckResult,
        Notification,
        NotifyBatch,
        NotifyBatchSummary,
        NotifyFailure,
        NotifyRequest,
        NotifySummary,
        RevokeRequest,
        RevokeResult,
    )

import gatekeeper.routing as routing
from gatekeeper.ledger.notices import Notice
from gatekeeper.ledger.state import Ledger
from workflows import timeouts

#: Refusals one refusal flush names in its summary (the audit trail has them all).
REFUSALS_NAMED = 3


class EffectHost(Protocol):
    """What the side effects ask of the workflow."""

    @property
    def ledger(self) -> Ledger: ...

    def now(self) -> datetime: ...

    def commit(self) -> None: ...


class Effects:
    """The release's side effects, and what they keep: the tasks still running (notifications,
    audit writes and head signings, all finished before the workflow ends), how far the audit
    store confirmed the chain, and the patches that shape them."""

    def __init__(self, host: EffectHost) -> None:
        self._host = host
        self.pending: list[asyncio.Task[None]] = []
        self.audit_confirmed = 0
        # Whether this release signs its audit heads (ANCHOR_PATCH), the last event a head
        # scheduled for signing covers, and whether the release's final head is signed.
        self.anchoring = False
        # Whether verifications count only for the evidence version they were asked for
        # (EVIDENCE_PATCH).
        self.versioned_evidence = False
        self.signed_through = -1
        self.final_head_signed = False
        # Whether a request refused in its handler is stored at once under a summary that says
        # so (REFUSAL_PATCH): the timeline's only sign of it otherwise is an update like any other.
        self.refusals_shown = False
        self._refusals: list[str] = []
        self._refusal_flush: asyncio.Task[None] | None = None
        # Whether the notices of one workflow task go out in one activity (COST_PATCH), and
        # those waiting for the end of the task.
        self.batched_notices = False
        self._outgoing: list[NotifyRequest] = []
        self._notice_flush: asyncio.Task[None] | None = None
        # The end of the events the audit writes scheduled so far carry (COST_PATCH: a write
        # sends only the events no earlier write carries, and its activity waits for those to
        # land; before, a write sent everything not yet confirmed, again).
        self.audit_sent = 0

    def stage_completed(self, stage_id: str) -> None:
        """Sign the audit head at a stage's end (ANCHOR_PATCH), or else store the events so far."""
        if self.anchoring:
            self.pending.append(asyncio.create_task(self.sign_head(f"stage {stage_id} completed")))
        else:
            self.start_audit_flush()

    async def verify_evidence(self) -> bool:
        """Verify the release's evidence as it is now; record the result unless an amend
        changed the evidence meanwhile (a later verification is then on its way, and the
        last to land must not be an older one). Whether the result was recorded."""
        ledger = self._host.ledger
        spec = ledger.spec
        version = ledger.evidence_version if self.versioned_evidence else None
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
                self._host.now(),
                "gatekeeper",
                "evidence_unverified",
                {"error": cause_message(err)},
            )
            self._host.commit()
            return True
        if not ledger.record_evidence_checks(result, self._host.now(), version):
            return False
        self._host.commit()
        return True

    async def revoke_everything(self, reason: str) -> None:
        ledger = self._host.ledger
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
                requested_at=self._host.now(),
            ),
            result_type=RevokeResult,
            start_to_close_timeout=timeouts.ACCESS_TIMEOUT,
            retry_policy=timeouts.ACCESS_RETRY,
            summary=f"Revoke {outstanding} partner grant(s)",
        )
        ledger.record_revocations(result, self._host.now(), reason)
        self._host.commit()

    def send(self, notice: Notice) -> None:
        ledger = self._host.ledger
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
            occurred_at=self._host.now(),
        )
        # Recipients are people and whole cohorts (the activity expands a cohort to its
        # partners), so one activity per notice is the rule; a roster too large for one request
        # is split. Delivery keys do not depend on the batch, so batching never re-sends.
        batches = [
            recipients[start : start + timeouts.NOTIFY_BATCH]
            for start in range(0, len(recipients), timeouts.NOTIFY_BATCH)
        ]
        if self.batched_notices:
            self._outgoing += [
                NotifyRequest(notification=notification, recipients=b) for b in batches
            ]
            if self._notice_flush is None:
                self._notice_flush = asyncio.create_task(self._flush_notices())
                self.pending.append(self._notice_flush)
            return
        for number, batch in enumerate(batches, start=1):
            # Channels travel as names only: what they are is the worker's configuration.
            request = NotifyRequest(notification=notification, recipients=batch)
            who = sorted({r.id for r in batch})
            summary = f"Notify {len(who)} recipient(s): {notice.event.value}"
            if len(batches) > 1:
                summary += f" (batch {number} of {len(batches)})"
            self.pending.append(asyncio.create_task(self._deliver(request, summary)))

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
            failure = {"key": key, "error": cause_message(err)}
        else:
            if not result.unconfigured:
                return
            failure = _failure_details(NotifyFailure(key=key, unconfigured=result.unconfigured))
        self._host.ledger.audit(self._host.now(), "gatekeeper", "notification_failed", failure)
        self._host.commit()

    async def _flush_notices(self) -> None:
        """Send every notice the workflow task raised, once the task's work is done (a condition
        is checked only when nothing else is ready to run), in as few activities as the batch
        size allows: one, unless the task notified more than :data:`timeouts.NOTIFY_BATCH`
        recipients. Notices raised after this flush took them go out in the next one."""
        await workflow.wait_condition(lambda: True)
        taken, self._outgoing, self._notice_flush = self._outgoing, [], None
        batches: list[list[NotifyRequest]] = [[]]
        size = 0
        for request in taken:
            if batches[-1] and size + len(request.recipients) > timeouts.NOTIFY_BATCH:
                batches.append([])
                size = 0
            batches[-1].append(request)
            size += len(request.recipients)
        await asyncio.gather(*(self._deliver_batch(batch) for batch in batches))

    async def _deliver_batch(self, requests: list[NotifyRequest]) -> None:
        events = list(dict.fromkeys(r.notification.event.value for r in requests))
        recipients = len({r.id for request in requests for r in request.recipients})
        summary = f"Notify {recipients} recipient(s): {', '.join(events)}"
        if len(requests) > 1:
            summary += f" ({len(requests)} notices)"
        failed: list[NotifyFailure]
        try:
            result = await workflow.execute_activity(
                "notify_stakeholders",
                NotifyBatch(requests=requests),
                result_type=NotifyBatchSummary,
                start_to_close_timeout=timeouts.NOTIFY_TIMEOUT,
                heartbeat_timeout=timeouts.NOTIFY_HEARTBEAT_TIMEOUT,
                retry_policy=timeouts.NOTIFY_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            # No answer at all (timed out, the worker lost): none of them is known delivered.
            failed = [
                NotifyFailure(key=r.notification.idempotency_key, error=cause_message(err))
                for r in requests
            ]
        else:
            failed = result.failed
        if not failed:
            return
        for failure in failed:
            self._host.ledger.audit(
                self._host.now(), "gatekeeper", "notification_failed", _failure_details(failure)
            )
        self._host.commit()

    def start_audit_flush(self) -> None:
        self.pending.append(asyncio.create_task(self._flush_audit()))

    def refusal_recorded(self, summary: str) -> None:
        """Store the audit events so far, the refusal's among them, under ``summary`` (which
        says what was refused, from whom, by which rule): in the Temporal UI an update refused
        in its handler looks like an accepted one (the update's own entry is green either way),
        and this activity beside it tells them apart. Under REFUSAL_PATCH only.

        One such flush runs at a time, for every refusal recorded since the last one started:
        each sends only the events not stored yet, so a burst of refusals costs a few small
        activities, not one per refusal each carrying the whole chain."""
        if not self.refusals_shown:
            return
        self._refusals.append(summary)
        if self._refusal_flush is None or self._refusal_flush.done():
            self._refusal_flush = asyncio.create_task(self._flush_refusals())
            self.pending.append(self._refusal_flush)

    async def _flush_refusals(self) -> None:
        while self._refusals:
            taken, self._refusals = self._refusals, []
            shown = "; ".join(taken[:REFUSALS_NAMED])
            if len(taken) > REFUSALS_NAMED:
                shown += f" (and {len(taken) - REFUSALS_NAMED} more refusal(s))"
            await self._flush_audit(shown)

    async def _flush_audit(self, why: str | None = None) -> None:
        # From the last *confirmed* event (overlapping flushes repeat events, which the store
        # skips), or under COST_PATCH from the end of what earlier writes carry (the activity
        # waits for those to land): either way never a gap.
        start = self._audit_start()
        events: list[AuditEvent] = self._host.ledger.chain.events[start:]
        if not events:
            return
        self.audit_sent = max(self.audit_sent, start + len(events))
        release_id = self._host.ledger.status.release_id
        if self.batched_notices:
            request = AuditFlushRequest(
                release_id=release_id,
                entries=[e.entry() for e in events],
                prev_hash=events[0].prev_hash,
            )
        else:
            request = AuditFlushRequest(release_id=release_id, events=events)
        result = await workflow.execute_activity(
            "record_audit_events",
            request,
            result_type=AuditFlushResult,
            start_to_close_timeout=timeouts.AUDIT_TIMEOUT,
            retry_policy=timeouts.AUDIT_RETRY,
            summary=f"{why}: record audit events {start}–{start + len(events) - 1}"
            if why
            else f"Record audit events {start}–{start + len(events) - 1}",
        )
        # What the store says it holds, not what this flush sent: after a crash the replayed
        # order of overlapping flushes and head signings may differ from the live one.
        stored = start + len(events) if result.length is None else result.length
        self.audit_confirmed = max(self.audit_confirmed, stored)

    async def sign_head(self, reason: str) -> None:
        """Store the events not stored yet, have the worker's key sign the chain's head and
        anchor it outside the workflow (one activity); the store's answer moves the "stored up
        to" mark."""
        ledger = self._host.ledger
        chain = ledger.chain.events
        start, head = self._audit_start(), chain[-1]
        self.audit_sent = max(self.audit_sent, len(chain))
        first = min(self.signed_through + 1, head.seq)
        self.signed_through = head.seq
        sent = chain[start:]
        request = AnchorRequest(
            release_id=ledger.status.release_id,
            first_run_id=workflow.info().first_execution_run_id,
            # Under COST_PATCH without what the activity derives (release id, links, hashes).
            events=[] if self.batched_notices else sent,
            entries=[e.entry() for e in sent] if self.batched_notices else [],
            prev_hash=sent[0].prev_hash if self.batched_notices and sent else None,
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
        self.audit_confirmed = max(self.audit_confirmed, stored)
        # The signed head lives in the anchor table (and the dossier, read from there), not in
        # the chain: the chain's content must not depend on when this continuation runs
        # relative to update handlers, which is not the same live and on replay when a workflow
        # task without commands sits between them (an event appended here landed at another
        # position after a crash, and the audit store then refused the replayed chain).

    def _audit_start(self) -> int:
        """The first event an audit write scheduled now sends."""
        if self.batched_notices:
            return max(self.audit_confirmed, min(self.audit_sent, len(self._host.ledger.chain)))
        return self.audit_confirmed

    async def settle(self) -> None:
        """Finish every handler, notification and audit write before the workflow ends."""
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            pending, self.pending = self.pending, []
            if pending:
                await asyncio.gather(*pending)
                continue
            if self.anchoring and not self.final_head_signed:
                self.final_head_signed = True
                await self.sign_head(f"release {self._host.ledger.status.state.value}")
                continue
            if self.audit_confirmed < len(self._host.ledger.chain):
                # No write is running now: what none confirmed is sent again.
                self.audit_sent = min(self.audit_sent, self.audit_confirmed)
                await self._flush_audit()
                continue
            if workflow.all_handlers_finished() and not self.pending:
                return


def _failure_details(failure: NotifyFailure) -> dict[str, Any]:
    """The ``notification_failed`` audit event's details for ``failure``."""
    if failure.error or not failure.unconfigured:
        return {"key": failure.key, "error": failure.error}
    names = ", ".join(failure.unconfigured)
    return {
        "key": failure.key,
        "error": f"channel(s) {names} are not defined in the worker's configuration; "
        "nothing was sent on them",
        "unconfigured_channels": list(failure.unconfigured),
    }

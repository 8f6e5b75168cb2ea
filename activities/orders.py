"""Order activities that reach other workflows: find the releases an order affects, and deliver
``suspend_access``/``restore_access`` to them.

A workflow cannot send an update to another workflow, so these run in the worker with its
Temporal client. Sending is concurrent but bounded, and heartbeats every answer received: a
retried attempt skips the releases that already answered (and a repeat would be harmless anyway,
since the release handles each order id idempotently).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError

from activities._errors import activity_errors
from gatekeeper.models.orders import (
    AffectedReleases,
    AffectedReleasesRequest,
    ReleaseAck,
    ReleaseUpdate,
    ReleaseUpdateBatch,
    ReleaseUpdateResult,
)
from gatekeeper.orders import find_running_releases, send_release_update

#: Updates in flight at once per activity; the order workflow runs a few activities at once.
UPDATE_CONCURRENCY = 25
#: Seconds between heartbeats while updates are in flight, even while every one of them waits.
HEARTBEAT_EVERY = 5.0


class OrderActivities:
    """Order activities, bound to the worker's Temporal client."""

    def __init__(
        self,
        client: Client,
        *,
        concurrency: int = UPDATE_CONCURRENCY,
        worker_key: Callable[[], Ed25519PrivateKey | None] | None = None,
    ) -> None:
        """``worker_key`` finds the worker's own key, which signs what orders relay to releases."""
        self._client = client
        self._concurrency = concurrency
        self._worker_key = worker_key or (lambda: None)

    @activity.defn(name="find_affected_releases")
    async def find_affected_releases(self, request: AffectedReleasesRequest) -> AffectedReleases:
        """The running releases of the order's models (a visibility query)."""
        with activity_errors():
            request = AffectedReleasesRequest.model_validate(request)
            releases = await find_running_releases(self._client, request.models)
        activity.logger.info(
            "order %s: %d running releases of %s",
            request.order_id,
            len(releases),
            ", ".join(request.models),
        )
        return AffectedReleases(releases=releases)

    @activity.defn(name="send_release_updates")
    async def send_release_updates(self, batch: ReleaseUpdateBatch) -> ReleaseUpdateResult:
        """Deliver every update of the batch and return each release's answer, in batch order."""
        with activity_errors():
            batch = ReleaseUpdateBatch.model_validate(batch)
            answered = _recalled(activity.info().heartbeat_details)
            todo = [u for u in batch.updates if u.release_id not in answered]
            key = self._worker_key()
            limit = asyncio.Semaphore(self._concurrency)

            def beat() -> None:
                activity.heartbeat([a.model_dump(mode="json") for a in answered.values()])

            async def deliver(update: ReleaseUpdate) -> None:
                async with limit:
                    answered[update.release_id] = await _answer(
                        self._client, update, batch.answer_within, key
                    )
                beat()

            ticker = asyncio.create_task(_tick(beat))
            try:
                outcomes = await asyncio.gather(*(deliver(u) for u in todo), return_exceptions=True)
            finally:
                ticker.cancel()
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            if failures:
                # Answers so far are in the heartbeat; the retry sends only the rest.
                raise failures[0]
        activity.logger.info(
            "order %s: %d releases answered (%d in an earlier attempt)",
            batch.order_id,
            len(batch.updates),
            len(batch.updates) - len(todo),
        )
        return ReleaseUpdateResult(acks=[answered[u.release_id] for u in batch.updates])


async def _answer(
    client: Client, update: ReleaseUpdate, within: float, key: Ed25519PrivateKey | None
) -> ReleaseAck:
    """The release's answer, or ``unanswered`` if it gives none in time: one release whose
    worker is down must not hold up the others."""
    try:
        return await asyncio.wait_for(send_release_update(client, update, key), within)
    # Cancelling a waiting update surfaces as the client's own timeout error, not TimeoutError.
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        return ReleaseAck(
            release_id=update.release_id,
            model=update.model,
            update=update.name,
            outcome="unanswered",
            detail=f"no answer within {within:g} s; the order sends it again",
            at=datetime.now(UTC),
        )


async def _tick(beat: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        beat()


def _recalled(details: Any) -> dict[str, ReleaseAck]:
    """Answers an earlier attempt heartbeated (its last heartbeat's list)."""
    if not details:
        return {}
    acks = [ReleaseAck.model_validate(item) for item in details[-1]]
    return {ack.release_id: ack for ack in acks}

"""Flooding one release: 10,000 requests neither terminate it nor stop it from launching.

Every update a release accepts is stored in its history, and Temporal terminates a workflow
whose history passes 51,200 events or 50 MB. Refusals in validators leave no history; what is
accepted draws on a per-release budget (``gatekeeper.rules.REQUEST_BUDGETS``, docs/requests.md),
so the history stays bounded whatever is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gatekeeper.models import ReleaseState
from gatekeeper.rules import PAYLOAD, PAYLOAD_BUDGET, REQUEST_BUDGETS
from gatekeeper.signed_requests import release_binding
from tests import factories, signing
from tests.security.conftest import Harness

#: Requests sent to the one release, and how many are in flight at once: the server admits at
#: most 10 updates in flight per workflow (``history.maxInFlightUpdates``) and answers more with
#: RESOURCE_EXHAUSTED, so a flood is throttled there first; the test sends again until admitted.
FLOOD = 10_000
IN_FLIGHT = 10
#: What the flooded release's whole history (to launch) must stay under: a fifth of Temporal's
#: limits (51,200 events / 50 MB), and under its warning thresholds (10,240 events / 10 MB).
MAX_EVENTS = 10_240
MAX_BYTES = 10 * 1024 * 1024
#: A 1 MB exemption list: 17,000 partner ids of 60 characters.
HUGE_EXEMPT = [f"partner-{n:06d}-".ljust(60, "x") for n in range(17_000)]


def until(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def requests() -> list[tuple[str, dict[str, Any]]]:
    """The flood: mostly refused (malformed, strangers, repeats, oversize, wrong role), with
    enough distinct, well-formed changes among them to spend every budget."""
    op = factories.OPERATOR
    lend = {"by": "sam.safety", "to": "sara.safety", "role": "safety", "until": until(30)}
    mix: list[tuple[str, dict[str, Any]]] = [
        ("hold", {"by": op, "reason": "flood hold"}),
        (
            "suspend_access",
            {
                "order_id": "flood",
                "by": "access-order-flood",
                "scope": "everyone",
                "reason": "flood order",
            },
        ),
    ]
    for n in itertools.count():
        if len(mix) >= FLOOD:
            break
        kind = n % 20
        if kind in (0, 1, 2, 3, 4):  # strangers
            mix.append(("approve", {"decider": f"mallory-{n}", "role": "safety"}))
        elif kind in (5, 6):  # malformed: unknown field, wrong type, empty
            mix.append(("approve", {"decider": "sam.safety", "role": "safety", "x": n}))
            mix.append(("hold", {"by": op, "reason": ["not", "text"]}))
            mix.append(("delegate", {}))
        elif kind in (7, 8):  # repeats: hold while held, an identical delegation, same order
            mix.append(("hold", {"by": op, "reason": "flood hold"}))
            mix.append(("delegate", lend))
            mix.append(
                (
                    "suspend_access",
                    {
                        "order_id": "flood",
                        "by": "access-order-flood",
                        "scope": "everyone",
                        "reason": "flood order",
                    },
                )
            )
        elif kind in (9, 10):  # known people breaking a rule (audited while the budget lasts)
            mix.append(("approve", {"decider": "lee.legal", "role": "safety"}))
            mix.append(("hold", {"by": "sam.safety", "reason": f"not an operator {n}"}))
        elif kind == 11:  # distinct, well-formed changes: spend the budgets
            mix.append(("amend", {"by": factories.SUBMITTER, "note": f"note {n}"}))
            mix.append(
                (
                    "delegate",
                    {
                        "by": "sam.safety",
                        "to": "sara.safety",
                        "role": "safety",
                        "until": until(1 + (n % 80) + n / 1e6),
                    },
                )
            )
            mix.append(
                (
                    "suspend_access",
                    {
                        "order_id": "flood",
                        "by": "access-order-flood",
                        "scope": "everyone",
                        "exempt_partners": [
                            f"partner-{n:05d}-{i:03d}-of-the-flood" for i in range(400)
                        ],
                        "reason": "flood order",
                    },
                )
            )
            mix.append(("record_government_response", {"by": factories.LIAISON, "kind": "cleared"}))
        elif kind == 12 and n % 1000 == 12:  # oversize: a 1 MB exemption list
            mix.append(
                (
                    "suspend_access",
                    {
                        "order_id": "huge",
                        "by": "access-order-huge",
                        "scope": "everyone",
                        "exempt_partners": HUGE_EXEMPT,
                        "reason": "bloat",
                    },
                )
            )
        else:
            mix.append(("resume", {"by": "mallory", "reason": "let me in"}))
    return mix[:FLOOD]


async def admitted(call: Callable[[], Awaitable[object]]) -> None:
    """Send until the server admits the update (it throttles more than 10 in flight)."""
    while True:
        try:
            await call()
            return
        except RPCError as err:
            if err.status is not RPCStatusCode.RESOURCE_EXHAUSTED:
                raise
            await asyncio.sleep(0.01)


async def send(harness: Harness, rid: str, mix: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    """Send every request, at most ``IN_FLIGHT`` at once; count the outcomes by rule."""
    handle = harness.handle(rid)
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(IN_FLIGHT)
    # Every request is signed by the key of the person (or order) it names, as an insider with
    # keys would flood; the binding does not move while the release waits at its gate.
    binding = release_binding(await harness.releases.status(rid))

    async def one(name: str, body: dict[str, Any]) -> None:
        body = await signing.signed(harness.releases, rid, name, body, binding=binding)
        async with gate:
            try:
                await admitted(lambda: handle.execute_update(name, body, result_type=dict))
                outcomes["accepted"] += 1
            except WorkflowUpdateFailedError as err:
                cause = err.cause
                rule = cause.type if isinstance(cause, ApplicationError) else None
                outcomes[rule or "refused"] += 1
                message = cause.message if isinstance(cause, ApplicationError) else str(cause)
                assert len(message) < 2000, message[:200]

    await asyncio.gather(*(one(name, body) for name, body in mix))
    return outcomes


async def history_size(harness: Harness, rid: str) -> tuple[int, int, Counter[str]]:
    history = await harness.handle(rid).fetch_history()
    kinds = Counter(EventType.Name(e.event_type) for e in history.events)
    return len(history.events), History(events=history.events).ByteSize(), kinds


class TestFlood:
    """10,000 requests against one release: the refused leave no history, the accepted stop at
    the budget, and the release still launches with a history far below Temporal's limits."""

    async def test_ten_thousand_requests_then_launch(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")

        started = asyncio.get_running_loop().time()
        outcomes = await send(harness, rid, requests())
        took = asyncio.get_running_loop().time() - started
        events, size, kinds = await history_size(harness, rid)
        status = await harness.releases.status(rid)
        print(f"\nflood: {sum(outcomes.values())} requests in {took:.1f} s: {dict(outcomes)}")
        print(f"after the flood: {events} events, {size} bytes; spent {status.requests}")
        print(dict(kinds.most_common(12)))

        assert sum(outcomes.values()) == FLOOD
        spent = dict(status.requests)
        assert spent.pop(PAYLOAD) <= PAYLOAD_BUDGET
        for budget, count in spent.items():
            assert count <= REQUEST_BUDGETS[budget], (budget, count)
        assert outcomes["request_budget_exhausted"] > 0, "the flood spends at least one budget"
        assert outcomes["accepted"] <= sum(REQUEST_BUDGETS.values())

        # The release still finishes: lift the hold and the order, review, window, launch.
        op = factories.OPERATOR
        handle = harness.handle(rid)
        await handle.execute_update(
            "resume",
            await signing.signed(
                harness.releases, rid, "resume", {"by": op, "reason": "flood over"}
            ),
            result_type=dict,
        )
        await handle.execute_update(
            "restore_access",
            await signing.signed(
                harness.releases,
                rid,
                "restore_access",
                {"order_id": "flood", "by": "access-order-flood", "reason": "lifted"},
            ),
            result_type=dict,
        )
        outcome = await harness.launch(rid)
        assert outcome.status.state is ReleaseState.LAUNCHED

        description = await handle.describe()
        assert description.status is WorkflowExecutionStatus.COMPLETED, "not terminated"
        events, size, kinds = await history_size(harness, rid)
        print(f"launched: {events} events, {size} bytes")
        assert events < MAX_EVENTS
        assert size < MAX_BYTES


class TestOversizeRequest:
    """A 1 MB ``suspend_access`` (16,000 exempt partners) is refused before it reaches history:
    the answer names the field in a short message, and nothing changes."""

    async def test_one_megabyte_exemption_list_is_refused(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        before = await harness.at_stage(rid, "internal_review")
        _, size, kinds_before = await history_size(harness, rid)
        body = {
            "order_id": "huge",
            "by": "access-order-huge",
            "scope": "everyone",
            "exempt_partners": HUGE_EXEMPT,
            "reason": "bloat",
        }
        assert len(json.dumps(body)) > 1_000_000

        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await harness.handle(rid).execute_update("suspend_access", body, result_type=dict)

        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "bad_input" and cause.non_retryable
        assert "exempt_partners" in cause.message, cause.message[:500]
        assert "\n" not in cause.message and len(cause.message) < 500, cause.message[:500]
        after = await harness.releases.status(rid)
        assert after.status_version == before.status_version
        assert after.suspensions == [] and after.state is ReleaseState.ACTIVE
        # The release may still be finishing a notification; the request itself left nothing.
        _, grown, kinds = await history_size(harness, rid)
        accepted = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"  # the start's wait_started
        assert kinds[accepted] == kinds_before[accepted]
        assert grown - size < 10_000, "no trace of the megabyte in history"

    async def test_padded_payload_is_refused(self, harness: Harness) -> None:
        """Whitespace between JSON tokens is stored in history too: a well-formed amend padded
        to 200 KB is refused as ``request_too_large``, and the release is unchanged."""
        status = await harness.start()
        rid = status.release_id
        before = await harness.at_stage(rid, "internal_review")
        _, _, kinds_before = await history_size(harness, rid)
        body = json.dumps({"by": factories.SUBMITTER, "note": "padded"})
        padded = body[:-1] + " " * 200_000 + "}"
        payload = Payload(metadata={"encoding": b"json/plain"}, data=padded.encode())

        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await harness.handle(rid).execute_update("amend", RawValue(payload), result_type=dict)

        cause = caught.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "request_too_large"
        assert "\n" not in cause.message and "195 KB" in cause.message, cause.message
        after = await harness.releases.status(rid)
        assert after.status_version == before.status_version and after.spec == before.spec
        _, _, kinds = await history_size(harness, rid)
        accepted = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"  # the start's wait_started
        assert kinds[accepted] == kinds_before[accepted]


class TestSpentBudget:
    """Once a budget is spent its requests are refused in the validator with
    ``request_budget_exhausted`` and leave no history, while the requests that finish a release
    (resume, withdraw) are still taken."""

    async def test_operator_budget(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        handle = harness.handle(rid)
        op = factories.OPERATOR
        budget = REQUEST_BUDGETS["operator"]

        async def operate(action: str, reason: str) -> Any:
            body = await signing.signed(harness.releases, rid, action, {"by": op, "reason": reason})
            return await handle.execute_update(action, body, result_type=dict)

        for n in range(budget // 2):
            await operate("hold", f"h{n}")
            await operate("resume", f"r{n}")
        status = await harness.releases.status(rid)
        assert status.requests["operator"] == budget

        kinds = (await history_size(harness, rid))[2]
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await operate("hold", "one more")
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "request_budget_exhausted"
        assert "\n" not in cause.message and f"its {budget} operator requests" in cause.message
        after = await harness.releases.status(rid)
        assert after.state is ReleaseState.ACTIVE and after.status_version == status.status_version
        accepted = "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED"
        assert (await history_size(harness, rid))[2][accepted] == kinds[accepted]

        result = await operate("withdraw", "flooded")
        assert result["state"] == "withdrawn"
        assert set(result) == {"message", "release_id", "state", "stage", "status_version"}
        assert len(json.dumps(result)) < 500, "an update answers in a few hundred bytes"
        outcome = await handle.result()
        assert outcome.status.state is ReleaseState.WITHDRAWN
        assert outcome.status.status_version >= result["status_version"]

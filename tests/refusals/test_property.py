"""Random payloads at every update never fail a workflow task (property test, hypothesis)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from tests import factories
from tests.workflows.conftest import Harness

UPDATES = [
    "approve",
    "reject",
    "request_changes",
    "amend",
    "record_government_response",
    "hold",
    "resume",
    "withdraw",
    "delegate",
    "suspend_access",
    "restore_access",
]
EXAMPLES_PER_UPDATE = 60
FIELDS = [
    "decider",
    "role",
    "stage",
    "comment",
    "signature",
    "by",
    "kind",
    "delay_until",
    "concern",
    "concern_id",
    "reference",
    "reason",
    "until",
    "to",
    "order_id",
    "scope",
    "exempt_partners",
    "safeguards",
    "evidence",
    "remove_evidence",
    "artifact_sha256",
    "artifact_uri",
    "note",
]
PEOPLE = [p.id for p in factories.ROSTER]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
near_valid = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(
        st.sampled_from(PEOPLE),
        st.sampled_from(
            [
                "safety",
                "security",
                "legal",
                "executive",
                "operator",
                "cleared",
                "concern_raised",
                "delay_requested",
                "concern_resolved",
                "internal_review",
                "foreign_persons",
            ]
        ),
        st.sampled_from(["2030-01-01T00:00:00Z", "2026-11-28T00:00:00+00:00", "yesterday", ""]),
        json_values,
    ),
    max_size=6,
)
payloads = st.one_of(near_valid, json_values)


def generate() -> list[Any]:
    drawn: list[Any] = []

    @settings(
        max_examples=EXAMPLES_PER_UPDATE,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(payloads)
    def collect(payload: Any) -> None:
        drawn.append(payload)

    collect()
    return drawn


class TestRandomPayloads:
    """Whatever arrives, the release answers and no workflow task fails."""

    async def fresh(self, harness: Harness) -> str:
        rid = f"r-prop-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        return rid

    async def test_no_workflow_task_fails(self, harness: Harness) -> None:
        releases = [await self.fresh(harness)]
        sent = accepted = 0
        for name in UPDATES:
            for payload in generate():
                rid = releases[-1]
                try:
                    await harness.handle(rid).execute_update(name, payload, result_type=dict)
                    accepted += 1
                except WorkflowUpdateFailedError:
                    pass
                except RPCError:
                    pass  # the release ended (a random payload may validly withdraw it)
                sent += 1
                if (await harness.releases.status(rid)).terminal:
                    releases.append(await self.fresh(harness))
        assert sent == len(UPDATES) * EXAMPLES_PER_UPDATE
        for rid in releases:
            status = await harness.releases.status(rid)  # still answering
            assert status.release_id == rid
            failed = [
                event
                async for event in harness.handle(rid).fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            assert not failed, failed[0].workflow_task_failed_event_attributes.failure.message
        print(f"{sent} random payloads, {accepted} accepted, {len(releases)} release(s)")

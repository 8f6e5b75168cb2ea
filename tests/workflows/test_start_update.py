"""A start is one call: the workflow start and a ``wait_started`` update (Update-with-Start) that
the release answers once it has resolved its policy and its first stage waits, or with the
one-line refusal of its start. Nothing polls for the first status."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities import activities_from, open_adapters
from activities.evidence import EvidenceActivities
from gatekeeper.ids import release_workflow_id
from gatekeeper.models import UpdateResult
from gatekeeper.models.io import EvidenceCheckRequest, EvidenceCheckResult
from gatekeeper.models.status import STARTED_UPDATE
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.workflows.conftest import Harness
from workers.worker import workflow_runner
from workflows.registry import ALL_WORKFLOWS


def updates(history: WorkflowHistory) -> list[str]:
    """The updates the release accepted, by name, in order."""
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


class TestStartAnswersWhenTheReleaseWaits:
    """``Releases.start`` returns the status of a release whose first gate already waits: the
    update was accepted with the start, before any activity ran, and completed once."""

    async def test_first_status_without_polling(self, harness: Harness) -> None:
        rid = f"r-uws-{uuid.uuid4().hex[:8]}"

        status = await harness.start(factories.spec(rid))

        assert status.stage == "internal_review" and status.awaiting is not None
        assert status.policy_sha256
        history = await harness.handle(rid).fetch_history()
        assert updates(history) == [STARTED_UPDATE]
        kinds = [e.event_type for e in history.events]
        accepted = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        assert accepted < kinds.index(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED) == 1


class TestARefusedStartAnswersTheUpdate:
    """A raw client's Update-with-Start of a malformed start input gets the one-line
    ``bad_input`` refusal from the update itself; the release ends without running anything."""

    async def test_malformed_input(self, harness: Harness) -> None:
        rid = f"r-uws-{uuid.uuid4().hex[:8]}"
        operation: WithStartWorkflowOperation[object, object] = WithStartWorkflowOperation(
            WORKFLOW_TYPE,
            {"spec": {"release_id": rid, "model": "not a model"}},
            id=release_workflow_id(rid),
            task_queue=harness.releases.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )

        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await harness.env.client.execute_update_with_start_workflow(
                STARTED_UPDATE, start_workflow_operation=operation, result_type=UpdateResult
            )

        cause = raised.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "bad_input"
        assert "\n" not in cause.message and "spec" in cause.message
        history = await harness.handle(rid).fetch_history()
        kinds = [e.event_type for e in history.events]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED in kinds
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in kinds
        assert updates(history) == [], "refused by the validator: no trace"


class _HeldEvidence:
    """``verify_evidence`` that waits until the test lets it answer."""

    def __init__(self, real: EvidenceActivities, go: threading.Event) -> None:
        self._real = real
        self._go = go

    @activity.defn(name="verify_evidence")
    def verify_evidence(self, request: EvidenceCheckRequest) -> EvidenceCheckResult:
        self._go.wait(20)
        return self._real.verify_evidence(request)


class TestAStartStillOnItsWay:
    """A release whose first wait is slow to come (its evidence check still running) answers
    the start with its status as it is once the update's time is up, not with "no worker"."""

    async def test_answers_with_the_status_so_far(
        self, env: Any, task_queue: str, tmp_path: Path
    ) -> None:
        adapters = open_adapters(Settings(task_queue=task_queue, data_dir=tmp_path))
        go = threading.Event()
        held = _HeldEvidence(EvidenceActivities(adapters.evidence), go)
        found = [a for a in activities_from(adapters) if a.__name__ != "verify_evidence"]
        api = Releases(
            env.client,
            task_queue,
            update_timeout=timedelta(seconds=1),
            signer=signing.signer(),
        )
        rid = f"r-uws-{uuid.uuid4().hex[:8]}"
        try:
            with ThreadPoolExecutor(4) as pool:
                async with Worker(
                    env.client,
                    task_queue=task_queue,
                    workflows=ALL_WORKFLOWS,
                    activities=[*found, held.verify_evidence],
                    activity_executor=pool,
                    workflow_runner=workflow_runner(),
                    graceful_shutdown_timeout=timedelta(seconds=5),
                ):
                    status = await factories.start_release(
                        api, adapters.policies, factories.spec(rid)
                    )
                    assert status.awaiting is None and status.stage is None
                    assert status.policy_sha256, "the policy was resolved"
                    go.set()
                    handle = api.handle(rid)
                    await handle.terminate("test over")
        finally:
            go.set()
            adapters.close()

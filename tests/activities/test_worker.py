"""The activities run on a real worker: found by name, fed plain JSON, failing as typed."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from activities.audit import AuditActivities
from activities.evidence import EvidenceActivities
from activities.government import GovernmentActivities
from activities.launch import LaunchActivities
from activities.notify import NotifyActivities
from gatekeeper.adapters import (
    ChannelRegistry,
    DatabaseAuditStore,
    DatabaseClearinghouse,
    DatabaseLaunchPublisher,
    DeliveryStore,
    LocalEvidenceVerifier,
    Notifier,
    Outbox,
)
from gatekeeper.channels import SendJournal
from gatekeeper.models.io import AuditFlushRequest, Recipient
from gatekeeper.models.spec import Artifact
from tests.adapters.builders import (
    RELEASE,
    chain,
    evidence_request,
    launch,
    notify_request,
    submission,
    webhook_settings,
)
from tests.helpers import running_worker


@workflow.defn(sandboxed=False)
class CallActivity:
    """Calls one activity by name with a JSON payload, as the release workflow will."""

    @workflow.run
    async def run(self, name: str, payload: dict[str, Any]) -> Any:
        return await workflow.execute_activity(
            name,
            payload,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        )


def all_activities(data: Path) -> list[Any]:
    url = f"sqlite:///{data / 'registry.db'}"
    journal = SendJournal(DeliveryStore(url), Outbox(data / "outbox.jsonl"))
    return [
        NotifyActivities(
            Notifier(
                ChannelRegistry.embedded(journal),
                # A webhook channel this worker defines but has no channel type for.
                configured={"hook": webhook_settings()},
            )
        ).notify_stakeholders,
        GovernmentActivities(DatabaseClearinghouse(url)).submit_to_government,
        EvidenceActivities(LocalEvidenceVerifier()).verify_evidence,
        AuditActivities(DatabaseAuditStore(url)).record_audit_events,
        LaunchActivities(DatabaseLaunchPublisher(url)).publish_launch,
    ]


async def call(client: Client, task_queue: str, data: Path, name: str, payload: Any) -> Any:
    async with running_worker(
        client, task_queue, workflows=[CallActivity], activities=all_activities(data), threads=4
    ):
        return await client.execute_workflow(
            CallActivity.run,
            args=[name, payload.model_dump(mode="json")],
            id=f"call-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )


class TestOnAWorker:
    """Each activity is registered under its fixed name and decodes its pydantic input."""

    @pytest.mark.parametrize(
        ("name", "payload", "field"),
        [
            ("notify_stakeholders", notify_request(2), "deliveries"),
            ("submit_to_government", submission(), "receipt_id"),
            (
                "verify_evidence",
                evidence_request(Artifact(uri="s3://weights/atlas", sha256="a" * 64)),
                "checks",
            ),
            (
                "record_audit_events",
                AuditFlushRequest(release_id=RELEASE, events=chain(3)),
                "stored",
            ),
            ("publish_launch", launch(), "launch_id"),
        ],
    )
    async def test_runs_by_name(
        self, client: Client, task_queue: str, tmp_path: Path, name: str, payload: Any, field: str
    ) -> None:
        result = await call(client, task_queue, tmp_path, name, payload)

        assert field in result

    async def test_non_retryable_failure_is_not_retried(
        self, client: Client, task_queue: str, tmp_path: Path
    ) -> None:
        request = notify_request(1)
        request.recipients.append(Recipient(id="x", channel="hook"))

        with pytest.raises(WorkflowFailureError) as caught:
            await call(client, task_queue, tmp_path, "notify_stakeholders", request)

        activity_error = caught.value.cause
        assert isinstance(activity_error, ActivityError)
        assert activity_error.retry_state is RetryState.NON_RETRYABLE_FAILURE
        failure = activity_error.cause
        assert isinstance(failure, ApplicationError)
        assert (failure.type, failure.non_retryable) == ("DeliveryError", True)

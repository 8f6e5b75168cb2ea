"""A release nobody serves: callers are told at once why nothing happens, never left waiting."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from gatekeeper.errors import NoAnswer
from gatekeeper.models import DecisionKind
from gatekeeper.releases import Releases
from tests import factories


class TestNoWorker:
    """Without a worker on the task queue, start, status and decisions fail with NoAnswer."""

    async def test_every_call_answers_promptly(self, env: WorkflowEnvironment) -> None:
        queue = f"nobody-{uuid.uuid4().hex[:8]}"
        api = Releases(
            env.client,
            queue,
            query_timeout=timedelta(seconds=1),
            update_timeout=timedelta(seconds=1),
        )
        rid = f"r-orphan-{uuid.uuid4().hex[:8]}"
        with pytest.raises(NoAnswer, match=f"started, but no worker answered.*{queue}"):
            await api.start(factories.spec(rid))
        with pytest.raises(NoAnswer, match=f"is a worker running on task queue '{queue}'"):
            await api.status(rid)
        with pytest.raises(NoAnswer, match="did not answer within 1 s"):
            await api.decide(rid, DecisionKind.APPROVE, factories.decision("sam.safety", "safety"))
        await api.handle(rid).terminate("test over")

"""Thousands of partners: the release's history and status stay small; the registry has it all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from temporalio.api.enums.v1 import EventType

from gatekeeper.adapters.registry.tables import partners
from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.models import OperatorRequest, ReleaseState
from gatekeeper.models.io import GRANT_SAMPLE
from tests import factories
from tests.workflows.conftest import Harness

PARTNERS = 3000


def seed(url: str, count: int) -> None:
    engine = sa.create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            sa.insert(partners),
            [
                {
                    "id": f"bulk-{i:05d}",
                    "name": f"Bulk {i}",
                    "tier": "government_approved",
                    "jurisdiction": "us",
                    "created_at": now,
                }
                for i in range(count)
            ],
        )
    engine.dispose()


class TestThousandsOfPartners:
    """Granting 3,000 partners keeps counts and a digest in the workflow, never the whole list;
    withdrawal revokes every one of them."""

    async def test_grant_and_revoke_thousands(self, harness: Harness) -> None:
        seed(str(harness.adapters.registry.url).replace("***", ""), PARTNERS)
        rid = f"r-scale-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 31)
        status = await harness.until(rid, lambda s: s.grant_summary.total > 0, within=60)

        summary = status.grant_summary
        assert summary.total == summary.active == PARTNERS + 3
        assert len(status.grants) == GRANT_SAMPLE
        assert len(status.model_dump_json()) < 100_000, "the status stays small"
        registry = harness.adapters.registry.list_grants(rid)
        assert len(registry) == summary.total
        assert summary.digests == [sha256_hex(canonical_json(sorted(g.grant_id for g in registry)))]

        await harness.releases.operate(
            rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="flaw")
        )
        outcome = await harness.handle(rid).result()
        assert outcome.status.state is ReleaseState.WITHDRAWN
        assert outcome.status.grant_summary.revoked == PARTNERS + 3
        assert all(g.status == "revoked" for g in harness.adapters.registry.list_grants(rid))

        largest = 0
        async for event in harness.handle(rid).fetch_history_events():
            largest = max(largest, event.ByteSize())
            assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        assert largest < 200_000, f"largest history event {largest} bytes"

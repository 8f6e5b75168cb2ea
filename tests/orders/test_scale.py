"""An order over 200 running releases completes, every release acknowledging its suspension."""

from __future__ import annotations

import asyncio
import time

import pytest

from gatekeeper.models import ReleaseState
from gatekeeper.models.orders import OrderLiftRequest, OrderSpec
from tests import factories
from tests.helpers import eventually
from tests.orders.conftest import OrderHarness, partner_policy, release_spec, unique

RELEASES = 200
#: Releases started (and awaited) at once, so the dev server is not flooded.
STARTING = 25


async def at_stage(orders: OrderHarness, model: str, count: int) -> None:
    """Wait until visibility shows ``count`` releases of ``model`` in partner access (asking
    visibility once, not every release)."""
    query = (
        f"WorkflowType = 'ModelReleaseWorkflow' AND ModelName = '{model}' "
        "AND ReleaseStage = 'vetted_partner_access'"
    )

    async def counted() -> int:
        return (await orders.env.client.count_workflows(query)).count

    await eventually(
        counted,
        lambda n: n >= count,
        what=f"{count} releases of {model} in partner access",
        within=60,
        every=0.2,
    )


@pytest.mark.slow
class TestTwoHundredReleases:
    """Two hundred releases parked in partner access are all suspended and all keep their stage."""

    async def test_an_order_over_200_running_releases(self, orders: OrderHarness) -> None:
        model = unique("fleet")
        policy = partner_policy()
        slots = asyncio.Semaphore(STARTING)

        async def start() -> str:
            async with slots:
                return (await orders.start(release_spec(model), policy)).release_id

        began = time.monotonic()
        ids = await asyncio.gather(*(start() for _ in range(RELEASES)))
        await at_stage(orders, model, RELEASES)
        for release_id in ids:  # granted and in the minimum period, not still granting
            await orders.parked(release_id)
        parked = time.monotonic() - began

        began = time.monotonic()
        status = await orders.orders.apply(
            OrderSpec(
                order_id=unique("ec-fleet"),
                models=[model],
                # Covering whole organisations, so each release is suspended (a foreign_persons
                # order is enforced per person and the releases would go on).
                scope="everyone",
                reason="export licence required for any access",
            ),
            factories.OPERATOR,
        )
        applied = time.monotonic() - began
        print(  # the closing note's figure; pytest -s shows it
            f"\n{RELEASES} releases parked in {parked:.1f} s; order applied to all of them "
            f"in {applied:.2f} s wall time"
        )

        assert status.state == "active"
        assert sorted(status.releases) == sorted(ids)
        assert status.counts()["acknowledged"] == RELEASES
        assert {(a.state, a.stage) for a in status.releases.values()} == {
            ("suspended", "vetted_partner_access")
        }
        for release_id in ids[:: RELEASES // 10]:  # a sample, read back from the releases
            release = await orders.releases.status(release_id)
            assert release.state is ReleaseState.SUSPENDED

        began = time.monotonic()
        status = await orders.orders.lift(
            status.order.order_id,
            OrderLiftRequest(by=factories.OPERATOR, reason="licence granted"),
        )
        print(f"lift restored {RELEASES} releases in {time.monotonic() - began:.2f} s wall time")
        assert {a.state for a in status.releases.values()} == {"active"}

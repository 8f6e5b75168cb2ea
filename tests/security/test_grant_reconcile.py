"""A release that ends any way other than ``launched`` never leaves a partner grant active.

Rejected and withdrawn releases revoke their own grants. A workflow terminated by an operator
(or by Temporal), failed or timed out cannot, so the worker reconciles: it revokes every grant
of a release whose workflow is closed without a launch (``gatekeeper.reconcile``), when it
starts, every ``GATEKEEPER_RECONCILE_EVERY`` seconds, and on ``gatekeeper ops reconcile-grants``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gatekeeper.adapters.registry.models import RegisteredPerson
from gatekeeper.models import NationalityStatus
from gatekeeper.reconcile import reconcile_forever
from tests.helpers import eventually
from tests.refusals.conftest import Run
from tests.security.conftest import Harness

GRANTED = {"acme-labs", "brit-ai", "invited-co"}


async def granted_release(harness: Harness) -> str:
    """A release at its partner stage, holding grants for the three eligible partners."""
    status = await harness.start()
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.pass_internal_review(rid)
    await harness.at_stage(rid, "government_testing_window")
    await harness.skip(rid, 31)
    status = await harness.at_stage(rid, "vetted_partner_access")
    assert {g.partner_id for g in status.grants} == GRANTED
    return rid


def active(harness: Harness, rid: str) -> set[str]:
    grants = harness.adapters.registry.list_grants(rid)
    return {g.partner_id for g in grants if g.status != "revoked"}


async def check(run: Run) -> tuple[int, str]:
    outcome = await run("access", "check", "--model", "aurora", "--person", "alice")
    return outcome.code, outcome.stdout.strip()


class TestTerminatedRelease:
    """An operator terminates a release holding grants; reconciliation revokes every one and
    ``access check`` denies; a running release's grants are left alone."""

    async def test_reconcile_grants_revokes_what_a_terminated_release_left(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        run = Run(harness, tmp_path)
        harness.adapters.registry.add_person(
            RegisteredPerson(
                id="alice",
                partner_id="acme-labs",
                nationality=NationalityStatus.US_PERSON,
                location="us",
            )
        )
        doomed = await granted_release(harness)
        running = await granted_release(harness)
        code, line = await check(run)
        assert code == 0 and line.startswith("allow (grant)"), line

        await harness.handle(doomed).terminate("pulled by an operator")
        assert active(harness, doomed) == GRANTED, "termination alone revokes nothing"

        outcome = await run("ops", "reconcile-grants", "--json")
        assert outcome.code == 0, outcome.stderr
        (item,) = json.loads(outcome.stdout)
        assert item["release_id"] == doomed
        assert item["workflow_status"] == "terminated"
        assert item["revoked"] == len(GRANTED)
        assert active(harness, doomed) == set()
        assert active(harness, running) == GRANTED, "a running release keeps its grants"
        reasons = {g.reason for g in harness.adapters.registry.list_grants(doomed)}
        assert reasons == {"release workflow terminated without launching (grants reconciled)"}

        again = await run("ops", "reconcile-grants")
        assert again.code == 0 and "0 grant(s) of 0 ended release(s) revoked" in again.stdout

        # alice still has access through the release that runs; end it too, then she has none.
        code, line = await check(run)
        assert code == 0, line
        await harness.handle(running).terminate("pulled by an operator")
        await run("ops", "reconcile-grants")
        code, line = await check(run)
        assert code == 1 and line.startswith("deny (revoked)"), line


class TestWorkerReconciles:
    """The worker's reconciliation loop runs as soon as it starts: a release terminated while
    no worker ran has its grants revoked without anyone asking."""

    async def test_loop_revokes_on_start(self, harness: Harness) -> None:
        rid = await granted_release(harness)
        await harness.handle(rid).terminate("terminated while no worker ran")
        stop = asyncio.Event()
        url = f"sqlite:///{(harness.data_dir / 'registry.db').resolve()}"
        loop = asyncio.create_task(reconcile_forever(harness.env.client, url, 3600, stop))
        try:
            await eventually(
                lambda: active(harness, rid),
                lambda grants: grants == set(),
                what=f"the reconciliation loop to revoke {rid}'s grants",
                within=10,
            )
        finally:
            stop.set()
            await loop


class TestLaunchedRelease:
    """A release that launched keeps its partners' grants: reconciliation leaves them alone."""

    async def test_launched_grants_stay(self, harness: Harness, tmp_path: Path) -> None:
        rid = await granted_release(harness)
        await harness.launch_from_partner_access(rid)

        outcome = await Run(harness, tmp_path)("ops", "reconcile-grants", "--json")
        assert outcome.code == 0, outcome.stderr
        assert json.loads(outcome.stdout) == []
        assert active(harness, rid) == GRANTED

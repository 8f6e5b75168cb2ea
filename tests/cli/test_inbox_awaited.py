"""Who a gate awaits is who may approve it: the status, ``AwaitingRoles`` and every inbox name
nobody whose approval the release would refuse (gatekeeper.rules: eligible implies authorised)."""

from __future__ import annotations

import json

import pytest

from gatekeeper.cli.inbox import waits_for
from gatekeeper.errors import DecisionRefused
from gatekeeper.models.status import Awaiting, GateState, HoldRecord, ReleaseStatus
from gatekeeper.rules import awaited_at_gate
from tests import factories
from tests.cli.conftest import Cli, new_id, until_visible
from tests.rules import world
from tests.workflows.conftest import Harness


async def inbox(cli: Cli, person: str) -> list[str]:
    result = await cli("review", "inbox", "--as", person, "--json")
    assert result.exit_code == 0, result.output
    return [item["release_id"] for item in json.loads(result.stdout)]


class TestAwaitedMayApprove:
    """Under distinct approvers across gates, an earlier gate's approver is not awaited later."""

    async def test_an_approver_of_internal_review_is_not_awaited_at_partner_access(
        self, cli: Cli, harness: Harness
    ) -> None:
        rid = new_id()
        policy = factories.policy(distinct_approvers_across_gates=True)
        await harness.start(factories.spec(rid), policy=policy)
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)  # sec.one approves as security
        await harness.at_stage(rid, "government_testing_window")
        await harness.skip(rid, 31)
        await harness.at_stage(rid, "vetted_partner_access")
        await harness.skip(rid, 15)
        status = await harness.until(
            rid, lambda s: bool(s.awaiting and "security" in s.awaiting.roles)
        )
        assert status.awaiting is not None
        assert status.awaiting.people == ["sec.two", "multi.role"], (
            "sec.one holds security but approved internal_review: not awaited"
        )

        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client, f"TaskQueue = '{queue}' AND AwaitingRoles = 'security'", [rid]
        )
        assert await inbox(cli, "sec.one") == [], "the inbox offers no decision it would refuse"
        assert await inbox(cli, "sec.two") == [rid]
        assert await inbox(cli, "multi.role") == [rid]

        with pytest.raises(DecisionRefused) as refused:
            await harness.approve(rid, "sec.one", "security")
        assert refused.value.rule == "distinct_approvers"
        await harness.approve(rid, "sec.two", "security")
        await harness.until(rid, lambda s: s.stage != "vetted_partner_access")


class TestAGateNobodyMayApprove:
    """An open gate that names nobody is in nobody's inbox, though its roles stay published;
    a held one is still the operators'."""

    @staticmethod
    def stuck() -> ReleaseStatus:
        roster = [world.person("rita", world.MANAGER), world.person("sam", "safety")]
        gates = [
            world.gate("review", world.req("safety")),
            world.gate("final", world.req("safety")),
        ]
        policy = world.policy(roster, gates, distinct_approvers_across_gates=True)
        review = GateState(
            stage="review",
            opened_at=world.NOW,
            closed_at=world.NOW,
            decisions=[world.approval("sam", "safety")],
        )
        final = GateState(stage="final", opened_at=world.NOW)
        release = world.status(policy, world.spec("rita"), {"review": review, "final": final})
        awaited = awaited_at_gate(policy, release, gates[1], final)
        assert awaited.stuck and awaited.roles == ["safety"]
        release.awaiting = Awaiting(
            what="approval at final", roles=awaited.roles, people=awaited.people, since=world.NOW
        )
        return release

    def test_nobody_is_offered_a_decision_at_a_stuck_gate(self) -> None:
        assert waits_for(self.stuck(), "sam", ["safety"]) == []

    def test_a_held_gate_is_still_the_operators(self) -> None:
        release = self.stuck()
        release.holds.append(HoldRecord(kind="operator", by="olga", reason="review", at=world.NOW))
        release.awaiting = Awaiting(what="resume", roles=["operator"], since=world.NOW)
        assert waits_for(release, "olga", ["operator"]) == ["operator"]

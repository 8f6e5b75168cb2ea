"""``gatekeeper review inbox --as USER``: what waits for a person, oldest wait first."""

from __future__ import annotations

import json

from gatekeeper.errors import InputError
from gatekeeper.models import DecisionKind, OperatorRequest
from tests import factories
from tests.cli.conftest import Cli, new_id, until_visible
from tests.workflows.conftest import Harness


async def start_three(harness: Harness) -> tuple[str, str, str]:
    """Three releases at internal review: A and C by rita.manager, B by rm.reviewer (legal).

    Each reaches its gate before the next starts, so their waits begin in the order A, B, C.
    """
    a, b, c = new_id(), new_id(), new_id()
    for rid, submitter in ((a, factories.SUBMITTER), (b, "rm.reviewer"), (c, factories.SUBMITTER)):
        await harness.start(factories.spec(rid, submitter=submitter))
        await harness.at_stage(rid, "internal_review")
    return a, b, c


async def inbox(cli: Cli, person: str) -> list[dict]:  # type: ignore[type-arg]
    result = await cli("review", "inbox", "--as", person, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ids(items: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [item["release_id"] for item in items]


class TestInbox:
    """Visibility finds the candidates; each release's own view of who may act filters them."""

    async def test_roles_separation_of_duties_and_decisions_shape_each_inbox(
        self, cli: Cli, harness: Harness
    ) -> None:
        a, b, c = await start_three(harness)
        await harness.approve(c, "sam.safety", "safety")
        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client,
            f"TaskQueue = '{queue}' AND AwaitingRoles = 'safety'",
            [a, b],
        )

        legal = await inbox(cli, "lee.legal")
        assert ids(legal) == [a, b, c], "every release awaits legal; oldest wait first"
        assert legal[0]["because"] == ["legal"] and legal[0]["stage"] == "internal_review"
        assert [i["since"] for i in legal] == sorted(i["since"] for i in legal)

        assert ids(await inbox(cli, "rm.reviewer")) == [a, c], "nobody reviews their own release"
        assert ids(await inbox(cli, "sara.safety")) == [a, b], "safety is done at C"
        assert await inbox(cli, factories.AUTHOR) == [], "an evidence author may not approve it"
        both = await inbox(cli, "multi.role")
        assert {i["release_id"]: i["because"] for i in both} == {
            a: ["safety", "security"],
            b: ["safety", "security"],
            c: ["security"],
        }

    async def test_a_decision_leaves_and_a_change_request_reaches_the_submitter(
        self, cli: Cli, harness: Harness
    ) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        empty = await cli("review", "inbox", "--as", factories.SUBMITTER)
        assert empty.exit_code == 0 and "nothing waits for rita.manager" in empty.output

        await harness.approve(rid, "sec.one", "security")
        await harness.releases.decide(
            rid, DecisionKind.REQUEST_CHANGES, factories.decision("lee.legal", "legal")
        )
        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client, f"TaskQueue = '{queue}' AND AwaitingRoles IS NULL", [rid]
        )
        mine = await inbox(cli, factories.SUBMITTER)
        assert ids(mine) == [rid] and mine[0]["because"] == ["submitter"]
        assert "amend" in mine[0]["what"]
        assert await inbox(cli, "sec.two") == [], "the gate waits for an amend, not a reviewer"

    async def test_a_held_release_waits_for_operators_not_reviewers(
        self, cli: Cli, harness: Harness
    ) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await harness.releases.operate(
            rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="export review")
        )
        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client, f"TaskQueue = '{queue}' AND AwaitingRoles = 'operator'", [rid]
        )
        assert await inbox(cli, "lee.legal") == []
        held = await inbox(cli, factories.OPERATOR)
        assert ids(held) == [rid] and held[0]["state"] == "held"

        table = await cli("review", "inbox", "--as", factories.OPERATOR)
        assert rid in table.output and "export review" in table.output

    async def test_someone_not_on_the_roster_is_an_input_error(self, cli: Cli) -> None:
        result = await cli("review", "inbox", "--as", "nobody.here")
        assert isinstance(result.exception, InputError)
        assert "not on the roster" in str(result.exception)

"""``release watch --until-awaiting``: wait until it is someone's turn, as a script or a README does.

Exit 0 as soon as the release waits for a decision from the role or person named; 1 when the
release ended without ever doing so (with one line saying so); 124 when ``--timeout`` passed.
"""

from __future__ import annotations

from tests import factories
from tests.cli.conftest import Cli, cli, harness, new_id

__all__ = ["cli", "harness"]  # the fixtures, used below


class TestUntilAwaiting:
    """The watch stops when the role or person named is awaited, not before and not never."""

    async def test_stops_when_the_role_is_awaited(self, cli: Cli) -> None:
        rid = new_id()
        await cli.harness.start(factories.spec(rid))

        ran = await cli("release", "watch", rid, "--until-awaiting", "safety", "--timeout", "30")

        assert ran.exit_code == 0, ran.output
        assert "waiting for approval at internal_review" in ran.output
        status = await cli.harness.releases.status(rid)
        assert status.stage == "internal_review" and "safety" in status.awaiting.roles  # type: ignore[union-attr]

    async def test_a_role_not_awaited_times_out(self, cli: Cli) -> None:
        rid = new_id()
        await cli.harness.start(factories.spec(rid))
        await cli.harness.at_stage(rid, "internal_review")

        ran = await cli("release", "watch", rid, "--until-awaiting", "executive", "--timeout", "2")

        assert ran.exit_code == 124, ran.output
        assert "still running after 2 s; stopped watching" in ran.output

    async def test_a_release_that_ends_first_exits_1(self, cli: Cli) -> None:
        rid = new_id()
        await cli.harness.start(factories.spec(rid))
        await cli.harness.at_stage(rid, "internal_review")
        withdrawn = await cli(
            "ops", "withdraw", rid, "--as", factories.OPERATOR, "--reason", "flaw found"
        )
        assert withdrawn.exit_code == 0, withdrawn.output

        ran = await cli("release", "watch", rid, "--until-awaiting", "executive", "--timeout", "30")

        assert ran.exit_code == 1, ran.output
        assert ran.output.splitlines()[-1] == (
            "the release ended (withdrawn) before awaiting executive"
        )

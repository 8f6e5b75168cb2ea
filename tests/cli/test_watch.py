"""``gatekeeper release watch ID``: a release's stages as they happen, until it ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from rich.console import Console

from gatekeeper.cli.watch import Change, WatchView, follow
from gatekeeper.errors import ReleaseNotFound
from gatekeeper.models import DecisionKind, ReleaseState, ReleaseStatus
from tests import factories
from tests.cli.conftest import Cli, new_id
from tests.workflows.conftest import Harness

PIPELINE = [
    "internal_review",
    "government_submission",
    "government_testing_window",
    "vetted_partner_access",
    "launch_approval",
    "public_launch",
]
TITLES = [stage.replace("_", " ").capitalize() for stage in PIPELINE]


async def drive_to_launch(
    harness: Harness, rid: str, seen: Callable[[str], Awaitable[None]] | None = None
) -> None:
    """Every approval and clock a release needs, in order; ``seen(stage)`` after each wait."""

    async def waiting_at(stage: str) -> None:
        await harness.at_stage(rid, stage)
        if seen is not None:
            await seen(stage)

    await waiting_at("internal_review")
    await harness.pass_internal_review(rid)
    await waiting_at("government_testing_window")
    await harness.skip(rid, 31)
    await waiting_at("vetted_partner_access")
    await harness.skip(rid, 15)
    await harness.until(rid, lambda s: bool(s.awaiting and "security" in s.awaiting.roles))
    await harness.approve(rid, "sec.two", "security")
    await waiting_at("launch_approval")
    await harness.approve(rid, "eve.exec", "executive")


class Recorder(WatchView):
    """A watch view that keeps what it was told, for a test to wait on."""

    def __init__(self) -> None:
        super().__init__(Console(file=None, quiet=True), json_lines=False)
        self.reports: list[tuple[ReleaseStatus, list[str]]] = []
        self._news = asyncio.Event()

    def changed(self, status: ReleaseStatus, changes: list[Change]) -> None:
        self.reports.append((status, changes))
        self._news.set()

    async def until_current(self, stage: str, within: float = 10) -> None:
        """Wait until the watcher reported ``stage`` as current and waiting."""
        async with asyncio.timeout(within):
            while not any(s.stage == stage and s.awaiting for s, _ in self.reports):
                self._news.clear()
                await self._news.wait()


class TestFollow:
    """Each waiting stage is reported as current, each stage's end once, in pipeline order."""

    async def test_reports_every_stage_of_a_launch(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        view = Recorder()
        with view:
            watching = asyncio.create_task(follow(harness.releases, rid, view, interval=0.05))
            await drive_to_launch(harness, rid, view.until_current)
            final = await watching

        assert final.state is ReleaseState.LAUNCHED
        lines = [line for _, changes in view.reports for _, line in changes]
        started = [
            line.removeprefix("▶ ").removesuffix(" started") for line in lines if "▶" in line
        ]
        assert started[0] == "Internal review" and set(started) <= set(TITLES)
        assert [t for t in TITLES if t in started] == started, "stages start in pipeline order"
        assert {"Government testing window", "Vetted partner access", "Launch approval"} <= set(
            started
        )
        done = [line.split(" done")[0].removeprefix("✔ ") for line in lines if "✔" in line]
        assert done == TITLES, "every stage ends exactly once"
        assert lines[-1].startswith("■ launched: published as ")


class TestWatchCommand:
    """The command prints lines or JSON lines and exits with the release's outcome."""

    async def test_json_lines_follow_a_release_to_launch(self, cli: Cli, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        watching = asyncio.create_task(
            cli("release", "watch", rid, "--json", "--interval", "0.1", "--timeout", "60")
        )
        await drive_to_launch(harness, rid)
        result = await watching

        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert lines[0]["release_id"] == rid
        assert lines[0]["changes"][0].startswith(f"watching release {rid}")
        seen = list(dict.fromkeys(line["stage"] for line in lines if line["stage"]))
        assert seen == [s for s in PIPELINE if s in seen], "stages appear in pipeline order"
        done = [c for line in lines for c in line["changes"] if c.startswith("✔")]
        assert [d.split(" done")[0] for d in done] == [f"✔ {t}" for t in TITLES]
        final = lines[-1]
        assert final["state"] == "launched" and set(final["stages"].values()) == {"done"}
        assert final["changes"][-1].startswith("■ launched")
        assert [line["at"] for line in lines] == sorted(line["at"] for line in lines)

    async def test_text_shows_a_rejection_and_exits_1(self, cli: Cli, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await harness.approve(rid, "sam.safety", "safety")
        watching = asyncio.create_task(cli("release", "watch", rid, "--interval", "0.1"))
        await harness.releases.decide(
            rid, DecisionKind.REJECT, factories.decision("lee.legal", "legal", comment="no")
        )
        result = await watching

        assert result.exit_code == 1, result.output
        out = result.stdout
        assert f"watching release {rid} (aurora 2.0.0)" in out
        assert "▶ Internal review started" in out
        assert "■ rejected: rejected at internal_review by lee.legal" in out

        again = await cli("release", "watch", rid)
        assert again.exit_code == 1, "an ended release is reported at once"
        assert again.stdout.count("■ rejected") == 1
        assert "waiting for" not in again.stdout, "an ended release waits for nobody"

    async def test_timeout_exits_124(self, cli: Cli, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        result = await cli("release", "watch", rid, "--interval", "0.1", "--timeout", "0.5")
        assert result.exit_code == 124
        assert "▶ Internal review started" in result.stdout
        assert "stopped watching" in result.output

    async def test_unknown_release_is_not_found(self, cli: Cli) -> None:
        result = await cli("release", "watch", "no-such-release", "--timeout", "5")
        assert isinstance(result.exception, ReleaseNotFound)

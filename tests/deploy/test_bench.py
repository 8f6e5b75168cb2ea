"""``make bench``'s parts: the baseline really has a release's shape, and the report reads right."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from bench.baseline import BaselineWorkflow, noop, plan_from_history
from bench.figures import process_memory_mb
from bench.pipeline import drive_baseline
from bench.release import (
    GATES,
    bench_policy,
    drive_release,
    install_policies,
    seed_partners,
)
from bench.report import render
from bench.run import parse_args
from gatekeeper.models.status import STARTED_UPDATE
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import signing
from tests.helpers import running_worker
from workflows.registry import ALL_WORKFLOWS

COUNTED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
}


def shape(events: Iterable[HistoryEvent]) -> Counter[str]:
    """Activities, updates and timers; the start's own update (Update-with-Start) is not a
    gate's decision, and the baseline, started plainly, has none."""
    return Counter(
        COUNTED[e.event_type]
        for e in events
        if e.event_type in COUNTED
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        != STARTED_UPDATE
    )


class TestBaselineShape:
    """A release's history becomes a plan, and the baseline workflow run from that plan has as
    many activities, updates and timers as the release had."""

    async def test_baseline_matches_release(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        settings = Settings(task_queue=task_queue, data_dir=tmp_path)
        seed_partners(settings.effective_registry_url)
        adapters = open_adapters(settings)
        releases = Releases(env.client, task_queue, signer=signing.signer())
        try:
            async with running_worker(
                env.client,
                task_queue,
                adapters,
                workflows=[*ALL_WORKFLOWS, BaselineWorkflow],
                extra_activities=[noop],
            ):
                release_id = f"bench-{uuid.uuid4().hex[:8]}"
                clock = timedelta(seconds=1)
                approvals: list[float] = []
                policy = bench_policy(clock, clock)
                await asyncio.to_thread(install_policies, settings.effective_registry_url, policy)
                await drive_release(releases, release_id, policy, approvals)
                history = await releases.handle(release_id).fetch_history()
                plan = plan_from_history(history.events, [len(a) for _, a in GATES])
                updates: list[float] = []
                baseline_id = await drive_baseline(env.client, task_queue, plan, updates)
        finally:
            adapters.close()
        release_shape = shape(history.events)
        assert release_shape == {
            "activities": plan.activities,
            "updates": plan.updates,
            "timers": plan.timers,
        }
        # The window and the partner period are timers unless the activities before them
        # outlasted them (a very slow machine).
        assert release_shape["updates"] == 5 and release_shape["timers"] >= 1
        assert len(approvals) == 5 and len(updates) == 5
        assert all(0 < t <= 1.0 for s in plan.segments for t in s.timers)

        baseline = await env.client.get_workflow_handle(baseline_id).fetch_history()
        assert shape(baseline.events) == release_shape


class TestReport:
    """The table puts each figure beside its target; options are checked."""

    def test_table_marks_targets(self) -> None:
        latency = {"count": 5, "p50_ms": 30.0, "p99_ms": 60.0, "max_ms": 60.0}
        results = {
            "pipeline": {
                "releases": 200,
                "releases_per_second": 2.0,
                "baseline_per_second": 2.4,
                "ratio": 1.2,
                "shape": {
                    "activities": 26,
                    "updates": 5,
                    "timers": 2,
                    "history_events": 193,
                    "baseline_history_events": 148,
                },
                "history_bytes": 80_896,
                "baseline_history_bytes": 17_408,
                "approval_idle": latency,
                "approval_loaded": latency,
                "baseline_update_idle": latency,
                "baseline_update_loaded": latency,
            },
            "parked": {
                "parked": 1000,
                "idle_worker": {"rss_mb": 120.0, "peak_rss_mb": 120.0},
                "with_parked": {"rss_mb": 540.0, "peak_rss_mb": 545.0},
            },
            "access": None,
            "fanout": None,
        }
        console = Console(width=200, record=True)
        console.print(render(results))
        text = console.export_text()
        assert "1.20x" in text and "met" in text
        assert "540 MB (545)" in text and "missed" in text
        assert "skipped (no registry bench)" in text
        assert "79 KiB, 193 events (17 KiB, 148)" in text

    def test_options(self) -> None:
        options = parse_args(["--releases", "3", "--parked", "4", "--json-out", "x.json"])
        assert (options.releases, options.parked, options.json_out) == (3, 4, Path("x.json"))
        assert parse_args([]).releases == 200 and parse_args([]).parked == 1000

    def test_memory_reading(self) -> None:
        memory = process_memory_mb(os.getpid())
        assert 10 < memory["rss_mb"] <= memory["peak_rss_mb"]

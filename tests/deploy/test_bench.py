"""``make bench``'s parts: the baseline really has a release's shape, and the report reads right."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from bench.access_service import bench_access_service
from bench.baseline import (
    SDK_PATCH_ATTRIBUTE,
    WORKFLOW_NAME,
    BaselineWorkflow,
    noop,
    plan_from_history,
    register,
)
from bench.figures import process_memory_mb
from bench.nginx import nginx_path
from bench.pipeline import bench_pipeline, drive_baseline
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
from workers.worker import workflow_runner
from workflows.registry import ALL_WORKFLOWS

COUNTED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activities",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "updates",
    EventType.EVENT_TYPE_TIMER_STARTED: "timers",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "upserts",
}


def own_upsert(event: HistoryEvent) -> bool:
    """An upsert the workflow made (not only the SDK's record of a patch)."""
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
    return set(fields.indexed_fields) != {SDK_PATCH_ATTRIBUTE}


def shape(events: Iterable[HistoryEvent]) -> Counter[str]:
    """Activities, updates (the start's own, Update-with-Start, included), timers and the
    workflow's own search-attribute upserts."""
    return Counter(
        COUNTED[e.event_type]
        for e in events
        if e.event_type in COUNTED
        and (
            e.event_type != EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES or own_upsert(e)
        )
    )


def carried(events: Sequence[HistoryEvent]) -> dict[str, Any]:
    """What a workflow was given: its start input, start search attributes and summary, and
    each update's name and argument payloads (messages: equal when their bytes and metadata
    are, whatever order a map was serialized in)."""
    started = events[0].workflow_execution_started_event_attributes
    accepted = [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    return {
        "input": list(started.input.payloads),
        "search_attributes": dict(started.search_attributes.indexed_fields),
        "summary": events[0].user_metadata,
        "updates": [(update.name, list(update.args.payloads)) for update in accepted],
    }


class TestBaselineShape:
    """A release's history becomes a plan, and the baseline workflow run from that plan carries
    what the release carried: the same start input, start search attributes and summary, the
    same updates with the same arguments byte for byte, as many activities, timers and
    search-attribute upserts."""

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
                workflow_runner=workflow_runner(("bench.plans",)),
            ):
                release_id = f"bench-{uuid.uuid4().hex[:8]}"
                clock = timedelta(seconds=1)
                approvals: list[float] = []
                policy = bench_policy(clock, clock)
                await asyncio.to_thread(install_policies, settings.effective_registry_url, policy)
                await drive_release(releases, release_id, policy, approvals)
                history = await releases.handle(release_id).fetch_history()
                plan = plan_from_history(
                    history.events, [len(a) for _, a in GATES], started_update=STARTED_UPDATE
                )
                register(WORKFLOW_NAME, plan)
                updates: list[float] = []
                baseline_id = await drive_baseline(
                    env.client, task_queue, WORKFLOW_NAME, plan, updates
                )
        finally:
            adapters.close()
        release_shape = shape(history.events)
        assert release_shape == {
            "activities": plan.activities,
            "updates": plan.updates + 1,  # and the start's own
            "timers": plan.timers,
            "upserts": plan.upserts,
        }
        # The window and the partner period are timers unless the activities before them
        # outlasted them (a very slow machine).
        assert plan.updates == 5 and release_shape["timers"] >= 1
        assert plan.upserts >= 10
        assert len(approvals) == 5 and len(updates) == 5

        baseline = await env.client.get_workflow_handle(baseline_id).fetch_history()
        assert shape(baseline.events) == release_shape
        assert carried(baseline.events) == carried(history.events)
        assert (
            baseline.events[0].workflow_execution_started_event_attributes.workflow_type.name
            == WORKFLOW_NAME
        )


class TestReport:
    """The table puts each figure beside its target; options are checked."""

    def test_table_marks_targets(self) -> None:
        def latency(p99: float) -> dict[str, float]:
            return {"count": 5, "p50_ms": 30.0, "p99_ms": p99, "max_ms": p99}

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
                    "upserts": 18,
                    "history_events": 193,
                    "baseline_history_events": 148,
                },
                "history_bytes": 80_896,
                "baseline_history_bytes": 17_408,
                "approval_idle": latency(60.0),
                "approval_loaded": latency(90.0),
                "approval_update_idle": latency(45.0),
                "approval_update_loaded": latency(70.0),
                "baseline_update_idle": latency(40.0),
                "baseline_update_loaded": latency(80.0),
                "postgres": {
                    "releases_per_second": 1.6,
                    "ratio_to_sqlite": 1.25,
                    "approval_loaded": latency(100.0),
                },
            },
            "parked": {
                "parked": 1000,
                "idle_worker": {"rss_mb": 120.0, "peak_rss_mb": 120.0},
                "with_parked": {"rss_mb": 240.0, "peak_rss_mb": 255.0},
            },
            "access": None,
            "access_service": {
                "grants": 100_000,
                "offered": {"rate": 2000.0, "p50_ms": 0.4, "p99_ms": 3.5},
                "latency": latency(0.2),
                "rate": {"connections": 8, "per_second": 2500.0, "p50_ms": 1.0, "p99_ms": 2.0},
                "nginx": {"added_p50_ms": 0.3, "added_p99_ms": 1.2},
                "enforcement": {
                    "trials": 2,
                    "order_applied_samples_ms": [100.0, 1200.0],
                    "withdrawal_samples_ms": [90.0, 80.0],
                    "order_lifted": latency(300.0),
                },
                "memory_after_load": {"rss_mb": 140.0},
                "memory": {"peak_rss_mb": 160.0},
            },
            "fanout": None,
        }
        console = Console(width=200, record=True)
        console.print(render(results))
        lines = console.export_text().splitlines()

        def line(start: str) -> list[str]:
            found = [text for text in lines if text.strip(" │").startswith(start)]
            assert len(found) == 1, (start, lines)
            return [cell.strip() for cell in found[0].strip(" │").split("│")]

        assert line("releases/s, 200 at once") == [
            "releases/s, 200 at once",
            "2.00",
            "2.40",
            "1.20x",
            "≤ 1.25x",
            "met",
        ]
        assert line("history per completed release")[1:] == [
            "79 KiB, 193 events",
            "17 KiB, 148",
            "4.65x",
            "≤ 1.5x",
            "missed",
        ]
        assert line("approval round trip idle (")[1:] == [
            "30.0 / 60.0 ms",
            "30.0 / 40.0 ms",
            "1.50x",
            "≤ 1.5x",
            "met",
        ]
        assert line("approval round trip under load (")[3:] == ["1.12x", "≤ 1.5x", "met"]
        assert line("releases/s, registry on PostgreSQL")[1:] == [
            "1.60",
            "",
            "1.25x",
            "≤ 1.2x",
            "missed",
        ]
        assert line("worker RSS with 1,000 releases parked")[1:] == [
            "240 MB (255)",
            "",
            "",
            "< 250",
            "met",
        ]
        assert "26 activities, 5 updates, 2 timers, 18 upserts" in line("baseline shape")
        # The access service's rows (issue 17's targets): each beside its own target.
        assert line("access decision p50 over HTTP")[1:] == ["0.40 ms", "", "", "< 1", "met"]
        assert line("p99 (ms)")[1:] == ["3.50 ms", "", "", "< 3", "missed"]
        assert line("access decisions/s")[3:] == ["", "≥ 2000", "met"]
        assert line("nginx auth_request")[3:] == ["", "< 5", "met"]
        # The p99 of the orders and withdrawals together: the slow order decides.
        assert line("order or withdrawal")[1:] == ["1200 ms (p50 100)", "", "", "< 1000", "missed"]
        assert line("access service RSS")[1:] == [
            "140 MB (peak 160 after 6 changes)",
            "",
            "",
            "< 150",
            "met",
        ]

    def test_options(self) -> None:
        options = parse_args(["--releases", "3", "--parked", "4", "--json-out", "x.json"])
        assert (options.releases, options.parked, options.json_out) == (3, 4, Path("x.json"))
        assert parse_args([]).releases == 200 and parse_args([]).parked == 1000

    def test_memory_reading(self) -> None:
        memory = process_memory_mb(os.getpid())
        assert 10 < memory["rss_mb"] <= memory["peak_rss_mb"]


class TestAccessServiceSmoke:
    """``make bench``'s access-service part, small: a registry of 600 grants, the real service
    and nginx (when installed); every figure is there and both answers occur."""

    async def test_small_run(self, tmp_path: Path) -> None:
        figures = await bench_access_service(
            tmp_path, seconds=0.3, trials=2, partner_count=60, person_count=120
        )
        assert figures["grants"] == 600
        for phase in ("offered", "latency", "rate"):
            result = figures[phase]
            assert result["allowed"] > 0 and result["denied"] > 0 and result["other"] == 0, phase
            assert 0 < result["p50_ms"] <= result["p99_ms"], phase
        enforcement = figures["enforcement"]
        for kind in ("order_applied", "order_lifted", "withdrawal"):
            assert len(enforcement[f"{kind}_samples_ms"]) == 2, kind
        assert figures["memory"]["rss_mb"] > 0
        if nginx_path() is not None:
            gateway = figures["nginx"]
            assert gateway["without"]["allowed"] > 0 and gateway["with_auth_request"]["denied"] > 0
            assert gateway["with_auth_request"]["other"] == 0


class TestPipelineSmoke:
    """``make bench``'s pipeline, small (read-only in CI, no target asserted): releases, bare
    baselines and releases with the registry on a PostgreSQL server the bench starts itself;
    every figure is there and the table renders."""

    async def test_small_run(self, env: WorkflowEnvironment, tmp_path: Path) -> None:
        said: list[str] = []
        figures = await bench_pipeline(env.client, tmp_path, 2, idle=1, say=said.append)
        assert figures["releases"] == 2
        for rate in ("releases_per_second", "baseline_per_second", "ratio", "history_ratio"):
            assert figures[rate] > 0, rate
        # 5 approvals per release: 1 idle release, 2 under load; the bare baseline alike.
        assert figures["approval_idle"]["count"] == figures["approval_update_idle"]["count"] == 5
        assert (
            figures["approval_loaded"]["count"] == figures["baseline_update_loaded"]["count"] == 10
        )
        assert figures["baseline_update_idle"]["count"] == 5
        postgres = figures["postgres"]
        assert postgres is not None and postgres["releases_per_second"] > 0
        assert postgres["approval_loaded"]["count"] == 10
        assert postgres["history_bytes"] > 0
        assert figures["shape"]["upserts"] >= 10 and figures["shape"]["updates"] == 5
        assert any("PostgreSQL" in line for line in said)
        console = Console(width=200, record=True)
        console.print(render({"pipeline": figures}))
        text = console.export_text()
        assert "releases/s, registry on PostgreSQL" in text
        # One release with payload compression on, beside the plain one (gatekeeper.compression).
        assert 0 < figures["compressed_history_bytes"] < figures["history_bytes"]
        assert "GATEKEEPER_PAYLOAD_COMPRESSION=zlib" in text

"""What operators see (issue 14): a held release always awaits ``operator``; ``AwaitingSince``
and ``ReleaseOutcome`` are kept current and found by the documented queries; the wait's "since"
does not reset on every change; a refused request shows in the timeline; a government response
that does not move the window's end leaves its timer alone; the window's end after an early
clearance is the clearance; the UI's details hold no table whose columns run together.

Driven through the ``gatekeeper`` CLI, a Temporal client and the stock ``temporal`` CLI, against
the session's dev server (time skipped where the clocks matter).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.converter import DataConverter

from gatekeeper import search_attributes as sa
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import ReleaseStatus
from gatekeeper.text import when
from tests import factories
from tests.cli.conftest import Cli, new_id, until_visible
from tests.helpers import eventually
from tests.workflows.conftest import Harness
from tests.workflows.test_interop import temporal

WINDOW = "government_testing_window"
WINDOW_TIMER = "30-day government testing window"
REVIEW = "export-control review"


async def in_window(harness: Harness) -> ReleaseStatus:
    rid = new_id()
    await harness.start(factories.spec(rid))
    await harness.at_stage(rid, "internal_review")
    await harness.pass_internal_review(rid)
    return await harness.at_stage(rid, WINDOW)


async def ok(cli: Cli, *args: str) -> str:
    result = await cli(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


async def inbox(cli: Cli, person: str) -> list[str]:
    return [
        item["release_id"]
        for item in json.loads(await ok(cli, "review", "inbox", "--as", person, "--json"))
    ]


async def attributes(harness: Harness, rid: str) -> dict[str, object]:
    described = await harness.handle(rid).describe()
    attrs = described.typed_search_attributes
    # An empty keyword list reads back as unset.
    values = {key.name: attrs.get(key) for key in sa.KEPT_CURRENT}
    values["AwaitingRoles"] = values["AwaitingRoles"] or []
    return values


async def published(harness: Harness, rid: str, name: str, value: object) -> dict[str, object]:
    """The release's kept-current attributes once ``name`` reads ``value`` (upserts are applied
    with the workflow task that made them, a moment after the status answers)."""
    return await eventually(
        lambda: attributes(harness, rid),
        lambda attrs: attrs[name] == value,
        what=f"{name} to read {value!r}",
    )


def same_instant(a: object, b: datetime | None) -> bool:
    """Visibility keeps datetimes to the millisecond or better."""
    return isinstance(a, datetime) and b is not None and abs(a - b) < timedelta(milliseconds=1)


async def timers(handle: WorkflowHandle, summary: str) -> list[str]:  # type: ignore[type-arg]
    """The fate of every timer the release started under ``summary``: fired, canceled or
    running."""
    convert = DataConverter.default.payload_converter
    started: dict[int, str] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            if convert.from_payload(event.user_metadata.summary, str) == summary:
                started[event.event_id] = "running"
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            origin = event.timer_fired_event_attributes.started_event_id
            if origin in started:
                started[origin] = "fired"
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            origin = event.timer_canceled_event_attributes.started_event_id
            if origin in started:
                started[origin] = "canceled"
    return list(started.values())


async def activity_summaries(handle: WorkflowHandle) -> list[str]:  # type: ignore[type-arg]
    convert = DataConverter.default.payload_converter
    return [
        convert.from_payload(event.user_metadata.summary, str)
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def details(harness: Harness, rid: str) -> WorkflowMetadata:
    metadata: WorkflowMetadata = await harness.handle(rid).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return metadata


class TestAHeldReleaseAwaitsAnOperator:
    """Held in the government window or the partner period, a release awaits ``operator`` first
    and whoever else must act; the operator's inbox and ``AwaitingRoles="operator"`` find it;
    resumed, it awaits what it awaited before, since when it did."""

    async def test_held_in_the_window(self, cli: Cli, harness: Harness) -> None:
        window = await in_window(harness)
        rid = window.release_id
        opened = window.government.window_opened_at
        assert window.awaiting is not None and window.awaiting.since == opened
        assert await inbox(cli, factories.OPERATOR) == []

        await ok(cli, "ops", "hold", rid, "--as", factories.OPERATOR, "--reason", REVIEW)
        held = await harness.until(
            rid, lambda s: bool(s.awaiting and "operator" in s.awaiting.roles)
        )
        assert held.awaiting is not None
        assert held.awaiting.roles == ["operator", "government_liaison"]
        assert held.awaiting.what == (
            f"the release to resume ({REVIEW}); meanwhile the government testing window "
            f"(ends {when(held.government.window_ends_at)})"
        )
        assert held.awaiting.since == opened, "the liaison has been awaited since the window opened"

        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client, f"TaskQueue = '{queue}' AND AwaitingRoles = 'operator'", [rid]
        )
        assert await inbox(cli, factories.OPERATOR) == [rid]
        assert await inbox(cli, factories.LIAISON) == [rid]
        attrs = await attributes(harness, rid)
        assert attrs["ReleaseState"] == "held" and same_instant(attrs["AwaitingSince"], opened)

        await ok(cli, "ops", "resume", rid, "--as", factories.OPERATOR, "--reason", "cleared")
        resumed = await harness.until(
            rid, lambda s: bool(s.awaiting and "operator" not in s.awaiting.roles)
        )
        assert resumed.awaiting is not None and resumed.awaiting.roles == ["government_liaison"]
        assert resumed.awaiting.since == opened
        await published(harness, rid, "AwaitingRoles", ["government_liaison"])
        assert await inbox(cli, factories.OPERATOR) == []

    async def test_held_in_the_partner_period(self, cli: Cli, harness: Harness) -> None:
        rid = (await in_window(harness)).release_id
        await harness.skip(rid, 31)
        period = await harness.until(
            rid,
            lambda s: bool(s.awaiting and s.awaiting.what.startswith("the minimum partner period")),
        )
        assert period.awaiting is not None and period.awaiting.roles == []
        await published(harness, rid, "AwaitingRoles", [])

        await ok(cli, "ops", "hold", rid, "--as", factories.OPERATOR, "--reason", REVIEW)
        held = await harness.until(rid, lambda s: bool(s.awaiting and s.awaiting.roles))
        assert held.awaiting is not None and held.awaiting.roles == ["operator"]
        assert held.awaiting.what.startswith(f"the release to resume ({REVIEW}); meanwhile the")
        assert held.awaiting.since > period.awaiting.since, "the operator's wait starts at the hold"
        attrs = await published(harness, rid, "AwaitingRoles", ["operator"])
        assert same_instant(attrs["AwaitingSince"], held.awaiting.since)
        assert rid in await inbox(cli, factories.OPERATOR)

    async def test_held_at_a_gate_the_wait_is_the_operators_then_the_reviewers_again(
        self, cli: Cli, harness: Harness
    ) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        review = await harness.at_stage(rid, "internal_review")
        assert review.awaiting is not None
        opened = review.awaiting.since
        await harness.approve(rid, "sam.safety", "safety")
        approved = await harness.until(
            rid, lambda s: bool(s.awaiting and "safety" not in s.awaiting.roles)
        )
        assert approved.awaiting is not None and approved.awaiting.since == opened, (
            "an approval rewords the wait; it does not restart it"
        )

        await ok(cli, "ops", "hold", rid, "--as", factories.OPERATOR, "--reason", REVIEW)
        held = await harness.until(
            rid,
            lambda s: (
                s.state.value == "held" and bool(s.awaiting and "operator" in s.awaiting.roles)
            ),
        )
        assert held.awaiting is not None and held.awaiting.roles == ["operator"]
        assert held.awaiting.since > opened
        await ok(cli, "ops", "resume", rid, "--as", factories.OPERATOR, "--reason", "done")
        back = await harness.until(rid, lambda s: bool(s.awaiting and "legal" in s.awaiting.roles))
        assert back.awaiting is not None and back.awaiting.since == opened


class TestTheWindowTimer:
    """Responses that leave the window's end where it is (a concern raised and resolved, a
    delay to a date before its end) keep its one timer; a delay that moves the end starts one
    for the new end; that timer firing ends the window."""

    async def test_one_timer_per_distinct_end(self, cli: Cli, harness: Harness) -> None:
        window = await in_window(harness)
        rid = window.release_id
        ends = window.government.window_ends_at
        assert ends is not None
        handle = harness.handle(rid)
        liaison = ("--as", factories.LIAISON)

        await ok(cli, "gov", "respond", rid, *liaison, "--concern", "tokenizer leak")
        await ok(cli, "gov", "respond", rid, *liaison, "--resolve-concern", "only")
        earlier = (ends - timedelta(days=3)).isoformat()
        await ok(cli, "gov", "respond", rid, *liaison, "--delay-until", earlier)
        status = await harness.until(rid, lambda s: len(s.government.delays) == 1)
        assert status.government.window_ends_at == ends
        assert status.awaiting is not None and status.awaiting.since == window.awaiting.since  # type: ignore[union-attr]
        assert await timers(handle, WINDOW_TIMER) == ["running"]
        shown = json.loads(await ok(cli, "release", "status", rid, "--json"))
        since = datetime.fromisoformat(shown["awaiting"]["since"].replace("Z", "+00:00"))
        assert since == window.government.window_opened_at, "`release status` waits since the open"

        later = ends + timedelta(days=2)
        await ok(cli, "gov", "respond", rid, *liaison, "--delay-until", later.isoformat())
        await harness.until(rid, lambda s: s.government.window_ends_at == later)
        await eventually(
            lambda: timers(handle, WINDOW_TIMER),
            lambda fates: fates == ["canceled", "running"],
            what="the old end's timer canceled and one for the new end",
        )
        await published(harness, rid, "GovernmentWindowEndsAt", later)

        await harness.skip(rid, 33)
        await harness.at_stage(rid, "vetted_partner_access")
        assert await timers(handle, WINDOW_TIMER) == ["canceled", "fired"]


#: What ``review approve`` says of it, unchanged by the timeline's activity.
REFUSED_LINE = (
    f"error: {factories.SUBMITTER} does not hold role 'safety' (holds: release_manager) and has "
    "no delegation for it"
)


async def entry_point(cli: Cli, *args: str) -> tuple[int, str, str]:
    """``gatekeeper ARGS`` in a child process, through the real entry point and its error
    boundary (exit codes and the one-line messages)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper",
        *args,
        env={**os.environ, **cli.env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


class TestRefusalsInTheTimeline:
    """A request refused in its handler (recorded in the audit trail) is stored at once by an
    activity whose summary says what was refused, from whom, by which rule: the timeline tells
    it from an accepted one. The CLI's one line and exit code 7 are unchanged, and nothing
    changed."""

    async def test_a_refused_approval(self, cli: Cli, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")

        code, out, err = await entry_point(
            cli, "review", "approve", rid, "--as", factories.SUBMITTER, "--role", "safety"
        )
        assert (code, out) == (7, ""), err
        assert err.splitlines() == [REFUSED_LINE]
        await ok(cli, "review", "approve", rid, "--as", "sam.safety", "--role", "safety")

        status = await harness.until(rid, lambda s: len(s.gates["internal_review"].decisions) == 1)
        assert [d.person for d in status.gates["internal_review"].decisions] == ["sam.safety"]
        summaries = await eventually(
            lambda: activity_summaries(harness.handle(rid)),
            lambda found: any(s.startswith("Refused") for s in found),
            what="the refusal's activity",
        )
        shown = [s for s in summaries if s.startswith("Refused")]
        assert len(shown) == 1
        assert shown[0].startswith(
            f"Refused approve by {factories.SUBMITTER}: role_not_held: record audit events "
        )
        assert not any("sam.safety" in s for s in summaries if s.startswith("Refused"))
        audit = await harness.releases.audit(rid)
        assert [e.actor for e in audit if e.action == "request_refused"] == [factories.SUBMITTER]

    async def test_a_burst_of_refusals_shares_few_activities(self, harness: Harness) -> None:
        """Five refusals at once: every one is named or counted by the activities that store
        them, which run one at a time, each sending only the events not stored yet."""
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        strangers = ["lee.legal", "lou.legal", "eve.exec", "ed.exec", factories.LIAISON]

        async def refused(person: str) -> None:
            with contextlib.suppress(DecisionRefused):
                await harness.approve(rid, person, "safety")

        await asyncio.gather(*(refused(p) for p in strangers))
        audit = await harness.releases.audit(rid)
        assert sorted(e.actor for e in audit if e.action == "request_refused") == sorted(strangers)

        def counted(summaries: list[str]) -> int:
            total = 0
            for summary in summaries:
                named, _, _ = summary.partition(": record audit events")
                more = re.search(r" \(and (\d+) more refusal\(s\)\)$", named)
                total += named.count("Refused approve by ") + (int(more.group(1)) if more else 0)
            return total

        shown = await eventually(
            lambda: activity_summaries(harness.handle(rid)),
            lambda found: counted([s for s in found if s.startswith("Refused")]) == 5,
            what="every refusal named or counted",
        )
        flushes = [s for s in shown if s.startswith("Refused")]
        assert 1 <= len(flushes) <= len(strangers), flushes
        # One at a time, each from where the last one stopped: no event is sent twice.
        ranges = [
            tuple(map(int, re.findall(r"record audit events (\d+)–(\d+)$", s)[0])) for s in flushes
        ]
        assert all(end + 1 == start for (_, end), (start, _) in itertools.pairwise(ranges)), ranges


class TestOutcomeAndWindowEnd:
    """Cleared early, the window's end (status details, ``GovernmentWindowEndsAt``, ``release
    list``) is the clearance, not the date a delay extended it to; once the release ends,
    ``ReleaseOutcome`` says how, and the stock ``temporal`` CLI finds it by it."""

    async def test_cleared_early_then_withdrawn(self, cli: Cli, harness: Harness) -> None:
        window = await in_window(harness)
        rid = window.release_id
        assert window.government.window_ends_at is not None
        attrs = await attributes(harness, rid)
        assert attrs["ReleaseOutcome"] is None
        extended = window.government.window_ends_at + timedelta(days=5)
        liaison = ("--as", factories.LIAISON)
        await ok(cli, "gov", "respond", rid, *liaison, "--delay-until", extended.isoformat())
        await ok(cli, "gov", "respond", rid, *liaison, "--cleared")
        status = await harness.at_stage(rid, "vetted_partner_access")
        closed = status.government.window_closed_at
        assert closed is not None and closed < extended
        assert status.government.window_ends_at == extended

        attrs = await published(harness, rid, "ReleaseStage", "vetted_partner_access")
        assert same_instant(attrs["GovernmentWindowEndsAt"], closed)
        listed = json.loads(await ok(cli, "release", "list", "--json"))
        (row,) = [r for r in listed if r["release_id"] == rid]
        assert row["window_ends_at"] is not None
        assert abs(
            datetime.fromisoformat(row["window_ends_at"].replace("Z", "+00:00")) - closed
        ) < timedelta(seconds=1)

        shown = (await details(harness, rid)).current_details
        assert f"ended {when(closed)} (cleared early; it was to end {when(extended)})" in shown

        await ok(cli, "ops", "withdraw", rid, "--as", factories.OPERATOR, "--reason", "pulled")
        await harness.handle(rid).result()
        await published(harness, rid, "ReleaseOutcome", "withdrawn")
        query = f'ReleaseOutcome="withdrawn" AND WorkflowId="release-{rid}"'
        code, out = await eventually(
            lambda: temporal(harness, "workflow", "list", "--query", query, "-o", "json"),
            lambda ran: f"release-{rid}" in ran[1],
            what="`temporal workflow list` to find the withdrawn release",
            within=10,
            every=0.2,
        )
        assert code == 0
        assert [w["execution"]["workflowId"] for w in json.loads(out)] == [f"release-{rid}"]
        attrs = await attributes(harness, rid)
        assert attrs["AwaitingSince"] is None and attrs["AwaitingRoles"] == []

    async def test_launched(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        outcome = await harness.launch(rid)
        assert outcome.status.state.value == "launched"
        await published(harness, rid, "ReleaseOutcome", "launched")
        queue = harness.releases.task_queue
        await until_visible(
            harness.env.client, f"TaskQueue = '{queue}' AND ReleaseOutcome = 'launched'", [rid]
        )


class TestDetailsDoNotRunTogether:
    """The UI renders Markdown tables without cell padding, so the details hold none: the
    stages (current details) and the evidence (details at start) are lists whose parts are
    separated by words and dots."""

    async def test_held_release_details(self, cli: Cli, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await ok(cli, "ops", "hold", rid, "--as", factories.OPERATOR, "--reason", REVIEW)
        await harness.until(rid, lambda s: bool(s.awaiting and s.awaiting.roles == ["operator"]))
        metadata = await details(harness, rid)
        current = metadata.current_details
        assert "|" not in current.replace("\\|", "")
        assert "1. **▶ current** — **Internal review** · since " in current
        assert "2. · pending — **Government submission**" in current
        described = await harness.handle(rid).describe()
        static = await described.static_details()
        assert static is not None and "|" not in static
        assert "- capability-eval · capability_evaluation · `" in static


OPERATORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operators.md"


def documented_queries() -> list[str]:
    """Every visibility query of docs/operators.md's question/query table."""
    rows = re.findall(r"^\| [^|`]+ \| `([^`]+)` \|$", OPERATORS_DOC.read_text(), re.MULTILINE)
    return [row for row in rows if not row.startswith("gatekeeper ")]


class TestDocumentedQueries:
    """Every query docs/operators.md gives operators is one the server accepts, and the
    ``AwaitingSince`` ones find a held release by how long it has waited."""

    async def test_the_server_takes_every_documented_query(self, harness: Harness) -> None:
        queries = documented_queries()
        assert len(queries) >= 19
        assert any("AwaitingSince <" in q for q in queries)
        assert 'ReleaseOutcome="withdrawn"' in queries
        queue = harness.releases.task_queue
        for query in queries:
            count = await harness.env.client.count_workflows(f"TaskQueue = '{queue}' AND ({query})")
            assert count.count == 0, query

    async def test_awaiting_since_finds_a_release_by_its_wait(
        self, cli: Cli, harness: Harness
    ) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await ok(cli, "ops", "hold", rid, "--as", factories.OPERATOR, "--reason", REVIEW)
        held = await harness.until(
            rid, lambda s: bool(s.awaiting and s.awaiting.roles == ["operator"])
        )
        assert held.awaiting is not None
        since = held.awaiting.since
        queue = harness.releases.task_queue
        after = (since + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        before = (since - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        base = f"TaskQueue = '{queue}' AND AwaitingRoles = 'operator'"
        await until_visible(harness.env.client, f'{base} AND AwaitingSince < "{after}"', [rid])
        await until_visible(harness.env.client, f'{base} AND AwaitingSince > "{before}"', [rid])
        await until_visible(harness.env.client, f'{base} AND AwaitingSince < "{before}"', [])

"""``gatekeeper release watch``: follow one release, stage by stage, until it ends.

The watcher polls ``get_head`` (a query: it never changes the release; the whole ``get_status``
only when the head's status version moved) and prints one line per
transition (a stage starting, finishing or being skipped, the state changing, what the release
waits for changing), under a live progress bar on a terminal. With ``--json`` it writes one JSON
object per change instead, for scripts.

Exit codes: 0 when the release launched, 1 when it was rejected or withdrawn, 124 (as
``timeout(1)``) when ``--timeout`` passed first.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

from gatekeeper.cli.common import rfc3339
from gatekeeper.models.enums import ReleaseState, StageStatus
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.releases import Releases
from gatekeeper.status_view import StatusView, view
from gatekeeper.text import for_markup, when

EXIT_LAUNCHED = 0
EXIT_STOPPED = 1
EXIT_TIMEOUT = 124


#: One thing that changed, and when it happened (not when the watcher saw it).
Change = tuple[datetime, str]


@dataclass(frozen=True)
class Snapshot:
    """The parts of a release a watcher reports on; two equal snapshots mean nothing to say
    (the times say when each change happened, and are no change themselves)."""

    state: ReleaseState
    stage: str | None
    stages: tuple[tuple[str, str, StageStatus, str], ...]  # id, title, status, note
    awaiting: str | None
    awaited: tuple[str, ...]
    outcome: str
    #: Each stage's start and end, in ``stages``' order.
    stage_times: tuple[tuple[datetime | None, datetime | None], ...] = field(
        default=(), compare=False
    )
    awaiting_since: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    ended_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def of(cls, status: ReleaseStatus | StatusView, updated_at: datetime | None = None) -> Snapshot:
        if isinstance(status, ReleaseStatus):
            updated_at = updated_at or status.updated_at
        v = status if isinstance(status, StatusView) else view(status)
        return cls(
            state=v.state,
            stage=v.stage,
            stages=tuple((s.id, s.title, s.status, s.note) for s in v.stages),
            awaiting=v.waiting.what if v.waiting else None,
            awaited=v.waiting.who if v.waiting else (),
            outcome=v.outcome,
            stage_times=tuple((s.started_at, s.ended_at) for s in v.stages),
            awaiting_since=v.waiting.since if v.waiting else None,
            updated_at=updated_at,
            ended_at=v.ended_at,
        )

    @classmethod
    def blank(cls, status: ReleaseStatus) -> Snapshot:
        """The release as it was before anything happened: the baseline of a first report."""
        return cls(
            state=ReleaseState.ACTIVE,
            stage=None,
            stages=tuple((s.id, s.title, StageStatus.PENDING, "") for s in status.stages),
            awaiting=None,
            awaited=(),
            outcome="",
        )


def transitions(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per thing that changed between two snapshots, in the order it happened."""
    return [line for _, line in timed_transitions(before, after)]


def timed_transitions(before: Snapshot, after: Snapshot) -> list[Change]:
    """:func:`transitions` with when each happened: a stage's own start or end, the release's
    end, when its current wait began; the last change of the release for the rest. A release
    first seen long after it ended shows each step at its own time, in the order they came."""
    fallback = after.updated_at or datetime.now(UTC)
    stages: list[Change] = []
    times = after.stage_times or ((None, None),) * len(after.stages)
    for (_, title, old, _), (_, _, new, note), (started, ended) in zip(
        before.stages, after.stages, times, strict=True
    ):
        if old is new:
            continue
        if new is StageStatus.CURRENT:
            stages.append((started or fallback, f"▶ {title} started"))
        elif new is StageStatus.DONE:
            if old is StageStatus.PENDING and started is not None:
                stages.append((started, f"▶ {title} started"))
            stages.append((ended or fallback, f"✔ {title} done" + (f": {note}" if note else "")))
        elif new is StageStatus.SKIPPED:
            stages.append(
                (ended or started or fallback, f"↷ {title} skipped" + (f": {note}" if note else ""))
            )
    # Stable: two steps at the same instant keep the pipeline's order.
    lines = sorted(stages, key=lambda change: change[0])
    if after.state is not before.state:
        if after.state.terminal:
            lines.append((after.ended_at or fallback, f"■ {after.state.value}: {after.outcome}"))
        else:
            lines.append((fallback, f"● now {after.state.value} (was {before.state.value})"))
    if after.awaiting and (after.awaiting, after.awaited) != (before.awaiting, before.awaited):
        who = f" — from {', '.join(after.awaited)}" if after.awaited else ""
        lines.append((after.awaiting_since or fallback, f"… waiting for {after.awaiting}{who}"))
    return lines


def exit_code(status: ReleaseStatus | None) -> int:
    """0 launched, 1 rejected or withdrawn, 124 when the watch timed out (``None``)."""
    if status is None:
        return EXIT_TIMEOUT
    return EXIT_LAUNCHED if status.state is ReleaseState.LAUNCHED else EXIT_STOPPED


def as_json(status: ReleaseStatus, changes: list[Change]) -> dict[str, Any]:
    """One JSON line: the release as it is (``at`` its last change), what changed, and when
    each change happened (``events``)."""
    awaiting = status.awaiting
    return {
        "release_id": status.release_id,
        "at": rfc3339(status.updated_at),
        "state": status.state.value,
        "stage": status.stage,
        "stages": {s.id: s.status.value for s in status.stages},
        "awaiting": awaiting.model_dump(mode="json") if awaiting else None,
        "outcome": status.outcome or None,
        "changes": [line for _, line in changes],
        "events": [{"at": rfc3339(at), "change": line} for at, line in changes],
    }


class WatchView:
    """Where a watch reports: lines (or JSON lines) plus a live progress bar on a terminal."""

    def __init__(self, console: Console, *, json_lines: bool) -> None:
        self.console = console
        self.json_lines = json_lines
        self.progress = Progress(
            SpinnerColumn(),
            # What a stage waits for can be long: one line, cut with an ellipsis, never wrapped.
            TextColumn(
                "{task.description}",
                table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
            ),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("stages"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=json_lines or not console.is_terminal,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> WatchView:
        self.progress.start()
        self._task = self.progress.add_task("connecting…", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def changed(self, status: ReleaseStatus, changes: list[Change]) -> None:
        if self.json_lines:
            sys.stdout.write(json.dumps(as_json(status, changes), ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        for at, line in changes:
            # A line quotes stage titles, notes and outcomes: people's text, never markup.
            self.progress.console.print(
                f"[dim]{when(at, seconds=True)}[/]  {for_markup(line, one_line=True)}",
                markup=True,
                highlight=False,
                soft_wrap=False,
            )

    def show(self, status: ReleaseStatus | StatusView) -> None:
        if self._task is None:
            return
        v = status if isinstance(status, StatusView) else view(status)
        where = v.stage or "starting"
        doing = v.waiting.what if v.waiting else v.state.value
        self.progress.update(
            self._task,
            total=len(v.stages),
            completed=v.finished,
            description=f"[bold]{for_markup(where, one_line=True)}[/] · "
            f"{for_markup(doing, one_line=True)}",
        )


def awaits(status: ReleaseStatus, who: str) -> bool:
    """Whether the release waits for a decision from ``who`` (a role or a person) now."""
    awaiting = status.awaiting
    return (
        not status.terminal and awaiting is not None and who in (*awaiting.roles, *awaiting.people)
    )


async def follow(
    api: Releases,
    release_id: str,
    out: WatchView,
    *,
    interval: float = 0.5,
    until_awaiting: str | None = None,
) -> ReleaseStatus:
    """Report every change of the release until it ends, or (``until_awaiting``) until it waits
    for that role or person (wrap in ``asyncio.timeout`` to bound)."""
    previous: Snapshot | None = None
    status: ReleaseStatus | None = None
    while True:
        # The release's head is a few hundred bytes; the whole status is read only when its
        # version moved (an unchanged version is an unchanged status).
        head = await api.head(release_id)
        if status is None or head.status_version != status.status_version:
            status = await api.status(release_id)
        seen = view(status)
        current = Snapshot.of(seen, status.updated_at)
        if previous is None:
            header = (
                f"watching release {seen.release_id} ({seen.headline}), "
                f"submitted by {seen.submitter}"
            )
            out.changed(
                status,
                [(status.started_at, header), *timed_transitions(Snapshot.blank(status), current)],
            )
        elif current != previous:
            out.changed(status, timed_transitions(previous, current))
        out.show(seen)
        previous = current
        if status.terminal or (until_awaiting is not None and awaits(status, until_awaiting)):
            return status
        await asyncio.sleep(interval)


async def follow_for(
    api: Releases,
    release_id: str,
    out: WatchView,
    *,
    interval: float,
    limit: float | None,
    until_awaiting: str | None = None,
) -> ReleaseStatus | None:
    """:func:`follow`, giving up after ``limit`` seconds (``None``: never) and returning ``None``."""
    try:
        async with asyncio.timeout(limit):
            return await follow(
                api, release_id, out, interval=interval, until_awaiting=until_awaiting
            )
    except TimeoutError:
        return None

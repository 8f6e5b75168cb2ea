"""``release list``'s table at 80 columns, server-free: which columns stay and which fold."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.console import Console

from gatekeeper.cli.render import list_table
from gatekeeper.release_list import ReleaseSummary
from gatekeeper.text import when

SINCE = datetime(2026, 11, 30, 9, 34, 43, tzinfo=UTC)


def summary(release_id: str, roles: list[str]) -> ReleaseSummary:
    return ReleaseSummary(
        release_id=release_id,
        model="aurora",
        version="2.0.0",
        stage="government_testing_window",
        state="held",
        risk_tier="high",
        awaiting_roles=roles,
        awaiting_since=SINCE,
        window_ends_at=SINCE,
        submitted_by="dana.reyes",
        started_at=SINCE,
        closed_at=None,
        execution_status="Running",
    )


def rendered(rows: list[ReleaseSummary], width: int = 80) -> list[str]:
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    console.print(list_table(rows, width=width))
    return console.export_text().splitlines()


class TestEightyColumns:
    """At 80 columns the release, its stage, its state and since when keep their width on the row's
    first line; only the free text (whom it awaits) folds."""

    def test_a_long_awaited_list_folds_and_the_time_stays_whole(self) -> None:
        roles = ["operator", "government_liaison", "safety", "security", "legal", "executive"]
        lines = rendered([summary("aurora-2.0.0-rc.1", roles)])
        assert all(len(line) <= 80 for line in lines)
        assert lines[0].split() == ["release", "stage", "state", "awaiting", "since"]
        first = lines[1]
        assert first.split()[:3] == ["aurora-2.0.0-rc.1", "government_testing_window", "held"]
        # Too narrow for the date: how long ago, on the row's first line, in one piece.
        assert re.search(r"\b\d+[dhms]( \d+[dhms])? ago$", first.rstrip()), first
        assert "held" in first
        # Folded cells continue on the next lines, in their own column: nothing is cut.
        folded = "".join("".join(line.split()) for line in lines[1:])
        for role in roles:
            assert role in folded

    def test_a_short_row_keeps_the_date(self) -> None:
        lines = rendered([summary("aurora-2.0.0", ["operator"])])
        assert lines[1].split()[:4] == [
            "aurora-2.0.0",
            "government_testing_window",
            "held",
            "operator",
        ]
        assert lines[1].rstrip().endswith(when(SINCE))

    def test_a_very_long_id_folds_the_stage_not_the_id_or_the_time(self) -> None:
        rid = "a-very-long-release-id-2.0.0-rc.1"
        lines = rendered([summary(rid, ["operator", "government_liaison", "safety"])])
        assert all(len(line) <= 80 for line in lines)
        row = next(line for line in lines if rid in line)
        assert row.startswith(rid + " ") and row.split()[2] == "held"
        assert row.rstrip().endswith("ago")

    def test_wider_terminals_get_the_other_columns_back(self) -> None:
        lines = rendered([summary("aurora-2.0.0", ["operator"])], width=200)
        assert "window ends" in lines[0] and "submitted by" in lines[0]

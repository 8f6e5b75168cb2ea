"""``make bench``'s console part, small: a few releases, a few renders of each page."""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from bench.console_render import PAGES, bench_console, rows


class TestConsoleRenderBench:
    """The render bench populates the namespace, signs in, renders every page and reports a
    p50 and p90 per page (each render answered 200, or the bench fails)."""

    async def test_small_run(self, env: WorkflowEnvironment, tmp_path: Path) -> None:
        said: list[str] = []
        figures = await bench_console(
            env.client, tmp_path / "console", releases=4, renders=3, say=said.append
        )
        assert figures["release_count"] == 4
        for page in PAGES:
            assert figures[page]["renders"] == 3
            assert 0 < figures[page]["p50_ms"] <= figures[page]["p90_ms"] <= figures[page]["max_ms"]
            assert figures[page]["bytes"] > 500
        assert [label.split(" render")[0] for label, _ in rows(figures)] == [
            f"console {page}" for page in PAGES
        ]
        assert said and "4 releases" in said[0]

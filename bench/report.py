"""The bench's figures as one table, with the targets beside them."""

from __future__ import annotations

from typing import Any

from rich.table import Table

#: Targets from the issue; reported beside the figures, never asserted.
TARGET_RATIO = 1.3
TARGET_APPROVAL_P99_MS = 50.0
TARGET_PARKED_RSS_MB = 300.0


def render(results: dict[str, Any]) -> Table:
    """The figures as one table, with the targets beside them."""
    table = Table(title="Gatekeeper bench", show_lines=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")

    def row(measure: str, value: str, target: str = "", ok: bool | None = None) -> None:
        mark = "" if ok is None else ("[green]met[/]" if ok else "[red]missed[/]")
        table.add_row(measure, value, target, mark)

    p = results["pipeline"]
    shape = p["shape"]
    row(
        f"releases/s ({p['releases']} through the pipeline)",
        f"{p['releases_per_second']:.2f}",
    )
    row(
        f"baseline/s ({shape['activities']} activities, {shape['updates']} updates, "
        f"{shape['timers']} timers each)",
        f"{p['baseline_per_second']:.2f}",
    )
    row(
        "ratio baseline / releases",
        f"{p['ratio']:.2f}x",
        f"≤ {TARGET_RATIO}x",
        p["ratio"] <= TARGET_RATIO,
    )
    for label, key in (("idle", "approval_idle"), ("under load", "approval_loaded")):
        figures = p[key]
        row(
            f"approval round trip {label} p50 / p99",
            f"{figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} ms",
            f"p99 < {TARGET_APPROVAL_P99_MS:g} ms",
            figures["p99_ms"] < TARGET_APPROVAL_P99_MS,
        )
    for label, key in (("idle", "baseline_update_idle"), ("under load", "baseline_update_loaded")):
        base = p[key]
        row(f"baseline update {label} p50 / p99", f"{base['p50_ms']:.1f} / {base['p99_ms']:.1f} ms")
    row(
        "history per completed release (bare baseline)",
        f"{p['history_bytes'] / 1024:.0f} KiB, {shape['history_events']} events "
        f"({p['baseline_history_bytes'] / 1024:.0f} KiB, {shape['baseline_history_events']})",
    )
    parked = results.get("parked")
    if parked is None:
        return table
    rss = parked["with_parked"]
    row(
        f"worker RSS with {parked['parked']} releases parked (peak)",
        f"{rss['rss_mb']:.0f} MB ({rss['peak_rss_mb']:.0f})",
        f"< {TARGET_PARKED_RSS_MB:g} MB",
        rss["peak_rss_mb"] < TARGET_PARKED_RSS_MB,
    )
    row("worker RSS idle", f"{parked['idle_worker']['rss_mb']:.0f} MB")
    access = results.get("access")
    if access:
        row(
            f"access check p50 / p99 ({access['grants']:,} grants)",
            f"{access['check_p50_us']:.1f} / {access['check_p99_us']:.1f} µs",
        )
    else:
        row("access check", "skipped (no registry bench)")
    fanout = results.get("fanout")
    if fanout:
        row(
            f"notification fan-out ({fanout['partners']:,} partners)",
            f"{fanout['fanout_seconds']:.2f} s, {fanout['history_bytes'] / 1024:.0f} KiB history",
        )
    else:
        row("notification fan-out", "skipped")
    console = results.get("console")
    if console:
        from bench.console_render import rows

        for label, value in rows(console):
            row(label, value)
    return table

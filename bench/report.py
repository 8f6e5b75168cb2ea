"""The bench's figures as one table: Gatekeeper beside bare Temporal, the ratio, and the
issue's target beside each (reported, never asserted)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

#: The targets of issue 16; shown beside the figures, never asserted.
TARGETS: dict[str, float] = {
    # bare baseline's releases/s over Gatekeeper's, 200 at once
    "throughput_ratio_max": 1.25,
    # one completed release's history over the baseline's
    "history_bytes_ratio_max": 1.5,
    # approval round trip p99 over a bare update's p99, idle and under the same load
    "approval_p99_ratio_max": 1.5,
    # a worker process with 1,000 releases parked
    "parked_rss_mb_max": 250.0,
    # SQLite's releases/s over PostgreSQL's (same run, same machine)
    "postgres_ratio_max": 1.2,
}


def _ms(figures: dict[str, Any]) -> str:
    return f"{figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} ms"


def render(results: dict[str, Any]) -> Table:
    """The figures as one table, side by side, with the targets beside them."""
    table = Table(title="Gatekeeper bench (targets shown, not asserted)", show_lines=False)
    table.add_column("measure")
    table.add_column("Gatekeeper", justify="right")
    table.add_column("bare Temporal", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")

    def row(
        measure: str,
        value: str,
        bare: str = "",
        ratio: float | None = None,
        target: float | None = None,
        *,
        below: bool = False,
    ) -> None:
        mark = ""
        if target is not None and ratio is not None:
            ok = ratio < target if below else ratio <= target
            mark = "[green]met[/]" if ok else "[red]missed[/]"
        target_text = "" if target is None else (f"< {target:g}" if below else f"≤ {target:g}x")
        ratio_text = "" if ratio is None or below else f"{ratio:.2f}x"
        table.add_row(measure, value, bare, ratio_text, target_text, mark)

    p = results["pipeline"]
    shape = p["shape"]
    row(
        f"releases/s, {p['releases']} at once",
        f"{p['releases_per_second']:.2f}",
        f"{p['baseline_per_second']:.2f}",
        p["ratio"],
        TARGETS["throughput_ratio_max"],
    )
    row(
        "history per completed release",
        f"{p['history_bytes'] / 1024:.0f} KiB, {shape['history_events']} events",
        f"{p['baseline_history_bytes'] / 1024:.0f} KiB, {shape['baseline_history_events']}",
        p["history_bytes"] / p["baseline_history_bytes"],
        TARGETS["history_bytes_ratio_max"],
    )
    if p.get("compressed_history_bytes"):
        row(
            "  same, GATEKEEPER_PAYLOAD_COMPRESSION=zlib",
            f"{p['compressed_history_bytes'] / 1024:.0f} KiB",
            f"{p['baseline_history_bytes'] / 1024:.0f} KiB",
            p["compressed_history_bytes"] / p["baseline_history_bytes"],
            TARGETS["history_bytes_ratio_max"],
        )
    for label, suffix in (("idle", "idle"), ("under load", "loaded")):
        approval = p[f"approval_{suffix}"]
        bare = p[f"baseline_update_{suffix}"]
        row(
            f"approval round trip {label} (p50 / p99)",
            _ms(approval),
            _ms(bare),
            approval["p99_ms"] / bare["p99_ms"],
            TARGETS["approval_p99_ratio_max"],
        )
        update = p.get(f"approval_update_{suffix}")
        if update and update["count"]:
            row(
                "  its update RPC alone",
                _ms(update),
                _ms(bare),
                update["p99_ms"] / bare["p99_ms"],
            )
    postgres = p.get("postgres")
    if postgres:
        row(
            "releases/s, registry on PostgreSQL (ratio: SQLite's rate / PG's)",
            f"{postgres['releases_per_second']:.2f}",
            "",
            postgres["ratio_to_sqlite"],
            TARGETS["postgres_ratio_max"],
        )
        row(
            "  approval round trip under load on PostgreSQL",
            _ms(postgres["approval_loaded"]),
        )
    else:
        row("releases/s with the registry on PostgreSQL", "skipped")
    parked = results.get("parked")
    if parked is not None:
        rss = parked["with_parked"]
        row(
            f"worker RSS with {parked['parked']:,} releases parked (peak)",
            f"{rss['rss_mb']:.0f} MB ({rss['peak_rss_mb']:.0f})",
            "",
            rss["rss_mb"],
            TARGETS["parked_rss_mb_max"],
            below=True,
        )
        row("worker RSS idle", f"{parked['idle_worker']['rss_mb']:.0f} MB")
    access = results.get("access")
    if access:
        row(
            f"access check p50 / p99 ({access['grants']:,} grants)",
            f"{access['check_p50_us']:.1f} / {access['check_p99_us']:.1f} µs",
        )
    fanout = results.get("fanout")
    if fanout:
        row(
            f"notification fan-out ({fanout['partners']:,} partners)",
            f"{fanout['fanout_seconds']:.2f} s, {fanout['history_bytes'] / 1024:.0f} KiB history",
        )
    console = results.get("console")
    if console:
        from bench.console_render import rows

        for label, value in rows(console):
            row(label, value)
    row(
        "baseline shape (the release's own)",
        f"{shape['activities']} activities, {shape['updates']} updates, {shape['timers']} "
        f"timers, {shape.get('upserts', 0)} upserts",
    )
    profile = results.get("profile")
    if profile and profile.get("samples"):
        for name, percent in profile["buckets"].items():
            row(f"process CPU (py-spy): {name}", f"{percent:.1f} %")
    return table

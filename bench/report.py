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
    # gatekeeper access serve at 100,000 grants (issue 17): decision latency at 2,000/s over
    # loopback HTTP, decisions/s, what nginx auth_request adds, order/withdrawal to enforcement,
    # the service's memory
    "access_p50_ms_max": 1.0,
    "access_p99_ms_max": 3.0,
    "access_rate_min": 2000.0,
    "access_nginx_added_p99_ms_max": 5.0,
    "access_enforcement_p99_ms_max": 1000.0,
    "access_rss_mb_max": 150.0,
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
        at_least: bool = False,
    ) -> None:
        mark = ""
        if target is not None and ratio is not None:
            ok = ratio >= target if at_least else (ratio < target if below else ratio <= target)
            mark = "[green]met[/]" if ok else "[red]missed[/]"
        if target is None:
            target_text = ""
        elif at_least:
            target_text = f"≥ {target:g}"
        else:
            target_text = f"< {target:g}" if below else f"≤ {target:g}x"
        ratio_text = "" if ratio is None or below or at_least else f"{ratio:.2f}x"
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
    served = results.get("access_service")
    if served:
        _access_service_rows(row, served)
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


def _access_service_rows(row: Any, served: dict[str, Any]) -> None:
    """``gatekeeper access serve``'s figures (:mod:`bench.access_service`) beside issue 17's
    targets."""
    grants = f"{served['grants']:,} grants"
    offered = served["offered"]
    rate = offered["rate"]
    row(
        f"access decision p50 over HTTP, {rate:,.0f}/s offered ({grants})",
        f"{offered['p50_ms']:.2f} ms",
        "",
        offered["p50_ms"],
        TARGETS["access_p50_ms_max"],
        below=True,
    )
    row(
        "  p99 (ms)",
        f"{offered['p99_ms']:.2f} ms",
        "",
        offered["p99_ms"],
        TARGETS["access_p99_ms_max"],
        below=True,
    )
    latency = served["latency"]
    row("  one connection, one after another p50 / p99", _ms(latency))
    saturated = served["rate"]
    row(
        f"access decisions/s, {saturated['connections']} connections at saturation",
        f"{saturated['per_second']:,.0f} (p50 {saturated['p50_ms']:.1f} / p99 "
        f"{saturated['p99_ms']:.1f} ms)",
        "",
        saturated["per_second"],
        TARGETS["access_rate_min"],
        at_least=True,
    )
    gateway = served.get("nginx")
    if gateway:
        row(
            "nginx auth_request: p99 added per request (ms)",
            f"{gateway['added_p99_ms']:.2f} ms (p50 {gateway['added_p50_ms']:.2f})",
            "",
            gateway["added_p99_ms"],
            TARGETS["access_nginx_added_p99_ms_max"],
            below=True,
        )
    else:
        row("nginx auth_request: added latency", "skipped (no nginx)")
    enforcement = served["enforcement"]
    enforced = _percentile_of(enforcement, ("order_applied", "withdrawal"))
    row(
        f"order or withdrawal → enforced, p99 of {enforced[0]} trials (ms)",
        f"{enforced[2]:.0f} ms (p50 {enforced[1]:.0f})",
        "",
        enforced[2],
        TARGETS["access_enforcement_p99_ms_max"],
        below=True,
    )
    row("  order lifted → allowed again p50 / p99", _ms(enforcement["order_lifted"]))
    memory = served["memory_after_load"]
    row(
        f"access service RSS serving {grants} (MB)",
        f"{memory['rss_mb']:.0f} MB (peak {served['memory']['peak_rss_mb']:.0f} after "
        f"{enforcement['trials'] * 3} changes)",
        "",
        memory["rss_mb"],
        TARGETS["access_rss_mb_max"],
        below=True,
    )


def _percentile_of(enforcement: dict[str, Any], kinds: tuple[str, ...]) -> tuple[int, float, float]:
    """Count, p50 and p99 (ms) of the named trial kinds together."""
    samples = sorted(x for kind in kinds for x in enforcement.get(f"{kind}_samples_ms", []))
    if not samples:
        return 0, 0.0, 0.0
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    return len(samples), samples[len(samples) // 2], p99

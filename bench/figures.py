"""The bench's arithmetic and readings: percentiles, latencies, history sizes, process memory."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path

from temporalio.api.history.v1 import History, HistoryEvent


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_ms(samples: Sequence[float]) -> dict[str, float]:
    return {
        "count": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 2) if samples else float("nan"),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2) if samples else float("nan"),
    }


async def timed(runs: Sequence[Awaitable[object]]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*runs)
    return time.perf_counter() - began


def history_bytes(events: Sequence[HistoryEvent]) -> int:
    """A history's serialized size: what the server stores and counts against its limits."""
    return History(events=events).ByteSize()


def process_memory_mb(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of one process, and its threads, from ``/proc``
    (Linux)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
        elif name == "Threads":
            fields[name] = int(value)
    return {
        "rss_mb": round(fields["VmRSS"], 1),
        "peak_rss_mb": round(fields["VmHWM"], 1),
        "threads": fields.get("Threads", 0),
    }

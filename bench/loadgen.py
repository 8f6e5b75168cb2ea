"""A load generator for the decision API: keep-alive HTTP/1.1 connections on a raw asyncio client.

``httpx`` spends more time per request than the service does, so the figures would measure the
client; this client sends pre-encoded requests and reads answers by ``content-length``, a few
tens of microseconds each, over keep-alive connections like a gateway's to its auth service.

    result = asyncio.run(load(port, requests, connections=4, seconds=10))
    paced = asyncio.run(load(port, requests, connections=4, seconds=10, rate=2000))

Without ``rate`` each connection sends its next request as soon as the answer to the last
arrives (closed loop: the most the service answers). With ``rate`` the connections together
send that many requests per second on a fixed schedule, and a request's latency counts from
when it was due, so a slow answer that delays the next request counts against the service (no
coordinated omission; the client's own oversleeping does not). ``requests`` (see
:func:`request_bytes`) are cycled through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LoadResult:
    """What a run measured: decisions, their rate, latency percentiles (ms), the outcomes."""

    connections: int
    rate: float | None
    seconds: float
    decisions: int
    per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    allowed: int
    denied: int
    other: int


def request_bytes(
    person: str,
    model: str,
    surface: str = "api",
    *,
    token: str | None = None,
    path: str = "/v1/decision",
) -> bytes:
    """One decision request, as a gateway's subrequest sends it."""
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: access-service",
        f"X-Gatekeeper-Person: {person}",
        f"X-Gatekeeper-Model: {model}",
        f"X-Gatekeeper-Surface: {surface}",
    ]
    if token is not None:
        lines.append(f"X-Gatekeeper-Gateway-Token: {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


class Connection:
    """One keep-alive HTTP/1.1 connection to a loopback port. A server that ends it (nginx
    after ``keepalive_requests``, a ``Connection: close``) is connected to again before the next
    request."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def ask(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; the answer's status and body."""
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self._port)
        reader, writer = self._streams
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        closing = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                closing = value.strip().lower() == b"close"
        body = await reader.readexactly(length) if length else b""
        if closing:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._streams is None:
            return
        _, writer = self._streams
        self._streams = None
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int = 4,
    seconds: float = 10.0,
    warmup: float = 1.0,
    rate: float | None = None,
) -> LoadResult:
    """Send ``requests`` (cycled) over ``connections`` keep-alive connections for ``seconds``
    (after ``warmup`` seconds not counted), as fast as answered or at ``rate`` per second in
    all, and measure."""
    samples: list[float] = []
    statuses = {200: 0, 403: 0, "other": 0}
    clock = time.perf_counter
    started = clock()
    counting_from = started + warmup
    until = counting_from + seconds

    interval = connections / rate if rate else 0.0

    async def worker(number: int) -> None:
        connection = Connection(port)
        try:
            index = number * 7919  # each connection starts elsewhere in the requests
            count = len(requests)
            due = started + interval * number / connections  # staggered schedules
            while True:
                begin = clock()
                if interval:
                    due += interval
                    if due > begin:  # early: wait, and count from the actual send
                        await asyncio.sleep(due - begin)
                        begin = clock()
                    else:  # late, because the last answer was: count from when it was due
                        begin = due
                if begin >= until:
                    return
                status, _ = await connection.ask(requests[index % count])
                index += 1
                if begin >= counting_from:
                    samples.append(clock() - begin)
                    if status in (200, 403):
                        statuses[status] += 1
                    else:
                        statuses["other"] += 1
        finally:
            await connection.close()

    await asyncio.gather(*(worker(number) for number in range(connections)))
    ordered = sorted(samples)
    if not ordered:
        raise RuntimeError("no decision was answered")
    return LoadResult(
        connections=connections,
        rate=rate,
        seconds=seconds,
        decisions=len(ordered),
        per_second=round(len(ordered) / seconds, 1),
        p50_ms=round(_percentile(ordered, 0.50) * 1000, 3),
        p90_ms=round(_percentile(ordered, 0.90) * 1000, 3),
        p99_ms=round(_percentile(ordered, 0.99) * 1000, 3),
        max_ms=round(ordered[-1] * 1000, 3),
        allowed=statuses[200],
        denied=statuses[403],
        other=statuses["other"],
    )

"""The load generator the benchmark drives the service with, against a real service: it counts
every answer by its status and never sends more than a paced rate asks."""

from __future__ import annotations

import asyncio

from bench.loadgen import load, request_bytes
from gatekeeper.access_service.server import Running
from tests.access_service.service import TOKEN


class TestLoad:
    """Closed loop: as fast as answered; paced: at most the rate, latency from when due."""

    def requests(self) -> list[bytes]:
        people = ["alice", "bruno", "walker", "nobody"]
        return [request_bytes(p, "aurora", token=TOKEN) for p in people]

    def test_closed_loop(self, service: Running) -> None:
        result = asyncio.run(
            load(service.port, self.requests(), connections=2, seconds=0.5, warmup=0.1)
        )
        assert result.decisions > 10
        assert result.allowed + result.denied == result.decisions and result.other == 0
        # alice is allowed, the three others denied: a quarter of the answers, give or take.
        assert 0.1 < result.allowed / result.decisions < 0.4
        assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms

    def test_paced(self, service: Running) -> None:
        result = asyncio.run(
            load(
                service.port, self.requests(), connections=2, seconds=1.0,
                warmup=0.1, rate=100,
            )
        )  # fmt: skip
        assert 50 <= result.decisions <= 110
        assert result.rate == 100 and result.other == 0

    def test_a_wrong_token_is_counted_apart(self, service: Running) -> None:
        wrong = [request_bytes("alice", "aurora", token="wrong-token-0123456789")]
        result = asyncio.run(load(service.port, wrong, connections=1, seconds=0.3, warmup=0.0))
        assert result.other == result.decisions > 0

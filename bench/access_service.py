"""Measure ``gatekeeper access serve`` the way a gateway uses it, at 100,000 grants.

    python -m bench.access_service [--json-out FILE]

builds the registry of :mod:`bench.access` (10,000 partners, 20,000 people, 100,000 grants, two
active orders), starts the real service as a subprocess (``gatekeeper access serve``, a shared
caller token) and measures over loopback HTTP/1.1 keep-alive connections:

- **latency at 2,000/s**: :data:`OFFERED_RATE` decisions a second on a fixed schedule over
  :data:`PACED_CONNECTIONS` connections, a late request timed from when it was due
  (:mod:`bench.loadgen`);
- **one connection**: one decision after another (p50, p99);
- **rate**: :data:`CONNECTIONS` connections asking as fast as they are answered (decisions/s at
  saturation, and the latency there);
- **through nginx** (when ``nginx`` is installed, :mod:`bench.nginx`): users' requests through
  the shipped configuration, whose ``auth_request`` asks the service before proxying to a model
  endpoint (nginx answering at once), against the same requests proxied without asking; the
  difference of the p99s is what asking Gatekeeper adds per request;
- **enforcement**: :data:`TRIALS` orders applied (and lifted) and :data:`TRIALS` release
  withdrawals (1,000 grants each), each through the registry's own methods; the time from the
  method returning (the registry's commit, which comes before ``gatekeeper access order apply``
  returns) until the service's answer flips, polled every :data:`POLL_SECONDS`;
- **memory**: the service's RSS and peak RSS (``VmRSS``/``VmHWM``) after all of that.

Nothing is asserted: ``make bench`` prints the figures beside the issue's targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.access import build_registry
from bench.figures import process_memory_mb
from bench.loadgen import Connection, load, request_bytes
from bench.nginx import free_port, nginx_config, nginx_path, running_nginx
from gatekeeper.adapters.registry.service import AccessRegistry
from gatekeeper.models.enums import Surface, VettingTier
from gatekeeper.models.io import GrantRequest, RevokeRequest
from gatekeeper.models.orders import ApplyOrderRequest, LiftOrderRequest
from gatekeeper.models.policy import Cohort
from gatekeeper.models.spec import ModelRef

#: Seconds each load phase is measured for (after a short warm-up).
SECONDS = 5.0
#: Connections of the saturation phase, and of the paced one.
CONNECTIONS = 8
PACED_CONNECTIONS = 4
TRIALS = 20
#: The issue's rate: latency is measured with this many decisions a second offered.
OFFERED_RATE = 2_000.0
POLL_SECONDS = 0.002
FLIP_TIMEOUT = 10.0
START_TIMEOUT = 120.0
#: The model no order names, used for the enforcement trials.
TRIAL_MODEL = "model-3"


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    if not ordered:
        return {"count": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    return {
        "count": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def service_command(config: Path, port: int) -> list[str]:
    """The real ``gatekeeper access serve`` through the CLI's entry point, on loopback."""
    return [
        sys.executable,
        "-m",
        "gatekeeper",
        "access",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


class Service:
    """``gatekeeper access serve`` in a subprocess, on a free loopback port."""

    def __init__(self, scratch: Path, registry_url: str, *, poll: float = 0.1) -> None:
        self.scratch = scratch
        self.registry_url = registry_url
        self.token = secrets.token_urlsafe(32)
        self.port = free_port()
        self.poll = poll
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_line = ""

    def start(self) -> None:
        tokens = self.scratch / "gateway-tokens"
        tokens.write_text(self.token + "\n")
        tokens.chmod(0o600)
        config = self.scratch / "gatekeeper.toml"
        config.write_text(
            "[access_service]\n"
            f'tokens_file = "{tokens}"\n'
            f"poll = {self.poll}\n"
            "staleness = 2.0\n"
            f'log_file = "{self.scratch / "edge.jsonl"}"\n'
        )
        env = {
            **os.environ,
            "GATEKEEPER_DATA_DIR": str(self.scratch / "data"),
            "GATEKEEPER_REGISTRY_URL": self.registry_url,
            "GATEKEEPER_CONFIG": str(config),
        }
        # Its output goes to a file: a pipe nobody reads once it is ready could fill and stop it.
        output = self.scratch / "service.log"
        with output.open("wb") as sink:
            process = self.process = subprocess.Popen(
                service_command(config, self.port),
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            for line in output.read_text(errors="replace").splitlines():
                if "listening on" in line:
                    self.ready_line = line.strip()
                    return
            time.sleep(0.05)
        self.stop()
        tail = output.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError("the access service did not start:\n" + "\n".join(tail))

    def memory_mb(self) -> dict[str, float]:
        assert self.process is not None
        return process_memory_mb(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _until(connection: Connection, request: bytes, status: int) -> float:
    """Seconds until ``request`` is answered with ``status``, polled every POLL_SECONDS."""
    started = time.perf_counter()
    while True:
        answered, _ = await connection.ask(request)
        elapsed = time.perf_counter() - started
        if answered == status:
            return elapsed
        if elapsed > FLIP_TIMEOUT:
            raise RuntimeError(f"the answer did not become {status} in {FLIP_TIMEOUT:g} s")
        await asyncio.sleep(POLL_SECONDS)


async def measure_enforcement(
    service: Service, registry: AccessRegistry, person: str, trials: int
) -> dict[str, Any]:
    """Orders applied and lifted, and releases withdrawn: registry commit → the answer flips."""
    connection = Connection(service.port)
    ask = request_bytes(person, TRIAL_MODEL, token=service.token)
    applied: list[float] = []
    lifted: list[float] = []
    withdrawn: list[float] = []
    withdrawn_grants: list[int] = []
    try:
        if (await connection.ask(ask))[0] != 200:
            raise RuntimeError(f"{person} is not allowed {TRIAL_MODEL} before the trials")
        for i in range(trials):
            now = datetime.now(UTC)
            await asyncio.to_thread(
                registry.apply_order,
                ApplyOrderRequest(
                    order_id=f"bench-trial-{i}",
                    models=[TRIAL_MODEL],
                    scope="everyone",
                    reason="enforcement trial",
                    issued_by="bench",
                    issued_at=now,
                ),
            )
            applied.append(await _until(connection, ask, 403) * 1000)
            await asyncio.to_thread(
                registry.lift_order,
                LiftOrderRequest(
                    order_id=f"bench-trial-{i}",
                    lifted_by="bench",
                    reason="trial over",
                    lifted_at=datetime.now(UTC),
                ),
            )
            lifted.append(await _until(connection, ask, 200) * 1000)
        # Withdrawals: a release granting one model to one cohort, then withdrawn (revoked).
        partner = await asyncio.to_thread(_partner_of, registry, person)
        tier, jurisdiction = partner
        for i in range(trials):
            model = f"withdrawn-{i}"
            release = f"bench-withdrawn-{i}"
            result = await asyncio.to_thread(
                registry.grant_for_cohorts,
                GrantRequest(
                    idempotency_key=f"{release}:access:grant",
                    release_id=release,
                    stage="access",
                    model=ModelRef(name=model, version="1"),
                    cohorts=[Cohort(id="one", tiers=[tier], jurisdictions=[jurisdiction])],
                    regions=[jurisdiction],
                    surfaces=[Surface.API, Surface.APP],
                    requested_at=datetime.now(UTC),
                ),
            )
            withdrawn_grants.append(len(result.grants))
            trial = request_bytes(person, model, token=service.token)
            await _until(connection, trial, 200)
            await asyncio.to_thread(
                registry.revoke,
                RevokeRequest(
                    idempotency_key=f"{release}:withdraw",
                    release_id=release,
                    grant_ids=[],
                    reason="withdrawn",
                    requested_at=datetime.now(UTC),
                ),
            )
            withdrawn.append(await _until(connection, trial, 403) * 1000)
    finally:
        await connection.close()
    return {
        "trials": trials,
        "poll_ms": POLL_SECONDS * 1000,
        "order_applied": _percentiles(applied),
        "order_lifted": _percentiles(lifted),
        "withdrawal": _percentiles(withdrawn),
        "order_applied_samples_ms": [round(x, 1) for x in applied],
        "order_lifted_samples_ms": [round(x, 1) for x in lifted],
        "withdrawal_samples_ms": [round(x, 1) for x in withdrawn],
        "withdrawal_grants": round(statistics.median(withdrawn_grants)) if withdrawn_grants else 0,
        "all": _percentiles(applied + lifted + withdrawn),
    }


def _partner_of(registry: AccessRegistry, person: str) -> tuple[VettingTier, str]:
    (facts,) = (p for p in registry.list_people() if p.id == person)
    assert facts.partner_id is not None
    (partner,) = (p for p in registry.list_partners() if p.id == facts.partner_id)
    return partner.tier, partner.jurisdiction


#: nginx's model endpoint in the bench: nginx itself answering at once, so the figures hold
#: only the decision subrequest's cost and nginx's own.
_MODEL_SERVER = """
    server {{
        listen 127.0.0.1:{model_port};
        access_log off;
        location / {{ return 200 "ok"; }}
    }}
"""
#: The same model requests without asking Gatekeeper: the baseline of "what nginx adds".
_UNGATED = """
        location /ungated/ {
            proxy_pass http://model_backend;
        }
"""


def gateway_request(path: str, person: str) -> bytes:
    """A user's request to nginx, signed in as ``person`` (the bench's bearer map)."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok-{person}\r\n\r\n"
    ).encode()


async def measure_nginx(
    scratch: Path,
    service: Service,
    people: Sequence[str],
    models: Sequence[str],
    *,
    seconds: float,
) -> dict[str, Any] | None:
    """The same users' requests through nginx with ``auth_request`` (the shipped configuration)
    and without: latency one after another, and the p99 the decision adds."""
    if nginx_path() is None:
        return None
    port, model_port = free_port(), free_port()
    config = nginx_config(
        scratch / "nginx",
        port=port,
        service_port=service.port,
        model_port=model_port,
        people={f"tok-{person}": person for person in people},
        token=service.token,
        extra_http=_MODEL_SERVER.format(model_port=model_port),
        extra_server=_UNGATED,
    )
    rng = random.Random(5)
    pairs = [(rng.choice(people), rng.choice(models)) for _ in range(2_000)]
    gated = [gateway_request(f"/v1/models/{model}/generate", person) for person, model in pairs]
    ungated = [gateway_request(f"/ungated/{model}/generate", person) for person, model in pairs]
    with running_nginx(config, port):
        without = await load(port, ungated, connections=1, seconds=seconds, warmup=0.5)
        with_auth = await load(port, gated, connections=1, seconds=seconds, warmup=0.5)
    return {
        "with_auth_request": asdict(with_auth),
        "without": asdict(without),
        "added_p50_ms": round(with_auth.p50_ms - without.p50_ms, 3),
        "added_p99_ms": round(with_auth.p99_ms - without.p99_ms, 3),
    }


def _allowed_person(registry: AccessRegistry) -> str:
    """A person the trials' model allows: someone of a partner (every partner holds it)."""
    for person in registry.list_people():
        if registry.check_access(TRIAL_MODEL, person.id, Surface.API).allowed:
            return person.id
    raise RuntimeError(f"nobody may use {TRIAL_MODEL}")


async def bench_access_service(
    scratch: Path,
    *,
    seconds: float = SECONDS,
    trials: int = TRIALS,
    partner_count: int = 10_000,
    person_count: int = 20_000,
    seed: int = 11,
) -> dict[str, Any]:
    """Every figure of the module docstring, as a dict."""
    rng = random.Random(seed)
    started = time.perf_counter()
    url, grants = await asyncio.to_thread(
        build_registry, scratch, partner_count=partner_count, person_count=person_count, rng=rng
    )
    build_seconds = time.perf_counter() - started
    service = Service(scratch, url)
    started = time.perf_counter()
    await asyncio.to_thread(service.start)
    start_seconds = time.perf_counter() - started
    memory_at_start = service.memory_mb()
    registry = AccessRegistry(url)
    try:
        models = [f"model-{m}" for m in range(6)]  # model-5: nobody holds it
        requests = [
            request_bytes(
                f"u{rng.randrange(person_count + 100):06d}",
                rng.choice(models),
                rng.choice(["api", "app"]),
                token=service.token,
            )
            for _ in range(5_000)
        ]
        warm = min(1.0, seconds / 5)
        offered = await load(
            service.port,
            requests,
            connections=PACED_CONNECTIONS,
            seconds=seconds,
            warmup=warm,
            rate=OFFERED_RATE,
        )
        single = await load(service.port, requests, connections=1, seconds=seconds, warmup=warm)
        saturated = await load(
            service.port, requests, connections=CONNECTIONS, seconds=seconds, warmup=warm
        )
        memory_after_load = service.memory_mb()
        person = await asyncio.to_thread(_allowed_person, registry)
        people = [f"u{i:06d}" for i in rng.sample(range(person_count), min(200, person_count))]
        gateway = await measure_nginx(scratch, service, people, models, seconds=seconds)
        enforcement = await measure_enforcement(service, registry, person, trials)
        memory = service.memory_mb()
    finally:
        registry.close()
        service.stop()
    return {
        "grants": grants,
        "people": person_count,
        "build_seconds": round(build_seconds, 1),
        "start_seconds": round(start_seconds, 2),
        "offered": asdict(offered),
        "latency": asdict(single),
        "rate": asdict(saturated),
        "enforcement": enforcement,
        "memory": memory,
        "memory_at_start": memory_at_start,
        "memory_after_load": memory_after_load,
        "nginx": gateway,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.access_service", description=__doc__)
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=TRIALS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gatekeeper-access-bench-") as scratch:
        figures = asyncio.run(
            bench_access_service(Path(scratch), trials=args.trials, seconds=args.seconds)
        )
    text = json.dumps(figures, indent=2)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()

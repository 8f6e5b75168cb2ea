"""Measure access-check latency over a registry of 100,000 grants.

    python -m bench.access [DIRECTORY]

builds a SQLite registry (10,000 partners, 20,000 people, 5 models on 2 surfaces, two active
orders) through the registry's own grant path, then times in-process checks one by one and
prints the figures as JSON. The request path needs p99 under 1 ms.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from gatekeeper.adapters.registry.service import AccessRegistry
from gatekeeper.adapters.registry.tables import partners, people
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.io import GrantRequest
from gatekeeper.models.orders import ApplyOrderRequest
from gatekeeper.models.policy import Cohort
from gatekeeper.models.spec import ModelRef

_JURISDICTIONS = ["us", "gb", "eu", "ca", "jp"]
_NATIONALITIES = list(NationalityStatus)
_SURFACES = [Surface.API, Surface.APP]


@dataclass(frozen=True)
class BenchResult:
    grants: int
    people: int
    orders: int
    build_seconds: float
    snapshot_seconds: float
    checks: int
    allowed: int
    check_p50_us: float
    check_p99_us: float
    check_max_us: float
    db_checks: int
    db_check_p50_us: float
    db_check_p99_us: float


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _seed(registry_url: str, partner_count: int, person_count: int, rng: random.Random) -> None:
    now = datetime.now(UTC)
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(partners),
                [
                    {
                        "id": f"p{i:05d}",
                        "name": f"Partner {i}",
                        "tier": rng.choice(list(VettingTier)).value,
                        "jurisdiction": rng.choice(_JURISDICTIONS),
                        "created_at": now,
                    }
                    for i in range(partner_count)
                ],
            )
            connection.execute(
                sa.insert(people),
                [
                    {
                        "id": f"u{i:06d}",
                        "partner_id": f"p{rng.randrange(partner_count):05d}",
                        "nationality": rng.choice(_NATIONALITIES).value,
                        "location": rng.choice([*_JURISDICTIONS, None]),
                        "created_at": now,
                    }
                    for i in range(person_count)
                ],
            )
    finally:
        engine.dispose()


def build_registry(
    directory: Path,
    *,
    partner_count: int = 10_000,
    person_count: int = 20_000,
    model_count: int = 5,
    rng: random.Random,
) -> tuple[str, int]:
    """A SQLite registry in ``directory`` (every partner gets every model on two surfaces, so
    grants = partners x models x 2; two active orders): its URL and the number of grants."""
    url = f"sqlite:///{(directory / 'bench-registry.db').resolve()}"
    registry = AccessRegistry(url)
    try:
        _seed(url, partner_count, person_count, rng)
        now = datetime.now(UTC)
        everyone = Cohort(id="all", tiers=list(VettingTier), jurisdictions=_JURISDICTIONS)
        grant_total = 0
        for m in range(model_count):
            result = registry.grant_for_cohorts(
                GrantRequest(
                    idempotency_key=f"bench-{m}:access:grant",
                    release_id=f"bench-{m}",
                    stage="access",
                    model=ModelRef(name=f"model-{m}", version="1"),
                    cohorts=[everyone],
                    regions=_JURISDICTIONS,
                    surfaces=_SURFACES,
                    requested_at=now,
                )
            )
            grant_total += len(result.grants)
        for order in (
            ApplyOrderRequest(
                order_id="bench-foreign",
                models=["model-0"],
                scope="foreign_persons",
                exempt_partners=["p00000", "p00001"],
                reason="benchmark",
                issued_by="bench",
                issued_at=now,
            ),
            ApplyOrderRequest(
                order_id="bench-jp",
                models=["model-1"],
                scope="jurisdiction:jp",
                reason="benchmark",
                issued_by="bench",
                issued_at=now,
            ),
        ):
            registry.apply_order(order)
    finally:
        registry.close()
    return url, grant_total


def run_benchmark(
    directory: Path,
    *,
    partner_count: int = 10_000,
    person_count: int = 20_000,
    model_count: int = 5,
    checks: int = 100_000,
    db_checks: int = 2_000,
    seed: int = 7,
) -> BenchResult:
    """Build the registry in ``directory`` (:func:`build_registry`) and time checks."""
    rng = random.Random(seed)
    started = time.perf_counter()
    url, grant_total = build_registry(
        directory,
        partner_count=partner_count,
        person_count=person_count,
        model_count=model_count,
        rng=rng,
    )
    registry = AccessRegistry(url)
    try:
        build_seconds = time.perf_counter() - started

        started = time.perf_counter()
        checker = registry.checker()
        snapshot_seconds = time.perf_counter() - started

        models = [f"model-{m}" for m in range(model_count + 1)]  # one model nobody holds
        queries = [
            (rng.choice(models), f"u{rng.randrange(person_count + 100):06d}", rng.choice(_SURFACES))
            for _ in range(checks)
        ]
        samples: list[float] = []
        allowed = 0
        clock = time.perf_counter_ns
        for model, person, surface in queries:
            begin = clock()
            decision = checker.check(model, person, surface)
            samples.append((clock() - begin) / 1000)
            allowed += decision.allowed
        db_samples: list[float] = []
        for model, person, surface in queries[:db_checks]:
            begin = clock()
            registry.check_access(model, person, surface)
            db_samples.append((clock() - begin) / 1000)
        return BenchResult(
            grants=grant_total,
            people=person_count,
            orders=2,
            build_seconds=round(build_seconds, 2),
            snapshot_seconds=round(snapshot_seconds, 2),
            checks=checks,
            allowed=allowed,
            check_p50_us=round(statistics.median(samples), 2),
            check_p99_us=round(_percentile(samples, 0.99), 2),
            check_max_us=round(max(samples), 2),
            db_checks=db_checks,
            db_check_p50_us=round(statistics.median(db_samples), 1),
            db_check_p99_us=round(_percentile(db_samples, 0.99), 1),
        )
    finally:
        registry.close()


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args:
        result = run_benchmark(Path(args[0]))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            result = run_benchmark(Path(scratch))
    sys.stdout.write(json.dumps(asdict(result), indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Record the histories the replay tests run today's workflow code against.

Run ``.venv/bin/python -m tests.histories.record`` only when a change to workflow code is meant to
be incompatible with running releases (which, once releases run in production, it must not be:
use ``workflow.patched()`` instead). Each scenario drives a real release on a fresh dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.testing._timeskipping import TimeSkippingConfig
from temporalio.worker import Worker

from activities import activities_from, open_adapters
from gatekeeper import search_attributes
from gatekeeper.adapters.registry import Partner
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import (
    AmendRequest,
    DecisionKind,
    EvidenceKind,
    EvidenceRef,
    GovernmentResponse,
    GovernmentResponseKind,
    OperatorRequest,
    VettingTier,
)
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from workers.devserver import temporal_executable
from workflows.registry import ALL_WORKFLOWS

HERE = Path(__file__).resolve().parent
TASK_QUEUE = "histories"


async def until(api: Releases, rid: str, check: Callable[..., bool]) -> None:
    for _ in range(400):
        if check(await api.status(rid)):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(rid)


async def launched(env: WorkflowEnvironment, api: Releases) -> str:
    """Every stage, a refused self-approval, changes requested and amended, a concern, a delay."""
    rid = "history-launched"
    await api.start(factories.spec(rid), factories.policy_ref(factories.policy()))
    await until(api, rid, lambda s: s.stage == "internal_review" and s.awaiting)
    with contextlib.suppress(DecisionRefused):
        await api.decide(rid, DecisionKind.APPROVE, factories.decision(factories.AUTHOR, "safety"))
    await api.decide(rid, DecisionKind.APPROVE, factories.decision("sam.safety", "safety"))
    await api.decide(
        rid, DecisionKind.REQUEST_CHANGES, factories.decision("lee.legal", "legal", comment="card")
    )
    card = EvidenceRef(
        id="system-card",
        kind=EvidenceKind.SYSTEM_CARD,
        uri="https://e.example/c2",
        sha256=factories.sha("c2"),
    )
    await api.amend(rid, AmendRequest(by=factories.SUBMITTER, evidence=[card]))
    for decider, role in factories.INTERNAL_REVIEW:
        await api.decide(rid, DecisionKind.APPROVE, factories.decision(decider, role))
    await until(api, rid, lambda s: s.stage == "government_testing_window")
    handle = api.handle(rid)
    await api.respond(
        rid,
        GovernmentResponse(
            by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RAISED, concern="finding"
        ),
    )
    status = await api.status(rid)
    assert status.government.window_ends_at is not None
    await api.respond(
        rid,
        GovernmentResponse(
            by=factories.LIAISON,
            kind=GovernmentResponseKind.DELAY_REQUESTED,
            delay_until=status.government.window_ends_at + timedelta(days=2),
        ),
    )
    await env.fast_forward(handle, timedelta(days=10))
    await api.respond(
        rid, GovernmentResponse(by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RESOLVED)
    )
    await env.fast_forward(handle, timedelta(days=23))
    await until(api, rid, lambda s: s.stage == "vetted_partner_access" and s.grants)
    await env.fast_forward(handle, timedelta(days=15))
    await until(api, rid, lambda s: s.awaiting and "security" in s.awaiting.roles)
    await api.decide(rid, DecisionKind.APPROVE, factories.decision("sec.two", "security"))
    await until(api, rid, lambda s: s.stage == "launch_approval" and s.awaiting)
    await api.operate(rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="press embargo"))
    await api.operate(
        rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="embargo lifted")
    )
    await api.decide(rid, DecisionKind.APPROVE, factories.decision("eve.exec", "executive"))
    await handle.result()
    return rid


async def rejected(env: WorkflowEnvironment, api: Releases) -> str:
    rid = "history-rejected"
    await api.start(factories.spec(rid))  # the store's default
    await until(api, rid, lambda s: s.stage == "internal_review" and s.awaiting)
    await api.decide(
        rid, DecisionKind.REJECT, factories.decision("lee.legal", "legal", comment="no")
    )
    await api.handle(rid).result()
    return rid


async def withdrawn(env: WorkflowEnvironment, api: Releases) -> str:
    rid = "history-withdrawn"
    await api.start(factories.spec(rid))  # the store's default
    await until(api, rid, lambda s: s.stage == "internal_review" and s.awaiting)
    for decider, role in factories.INTERNAL_REVIEW:
        await api.decide(rid, DecisionKind.APPROVE, factories.decision(decider, role))
    await until(api, rid, lambda s: s.stage == "government_testing_window")
    await env.fast_forward(api.handle(rid), timedelta(days=31))
    await until(api, rid, lambda s: s.grants)
    await api.operate(
        rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="found a flaw")
    )
    await api.handle(rid).result()
    return rid


SCENARIOS: list[Callable[[WorkflowEnvironment, Releases], Awaitable[str]]] = [
    launched,
    rejected,
    withdrawn,
]


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_executable(),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
        ],
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
    )
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(8) as pool:
        adapters = open_adapters(Settings(task_queue=TASK_QUEUE, data_dir=Path(tmp)))
        adapters.registry.add_partner(
            Partner(
                id="acme-labs", name="Acme", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="us"
            )
        )
        factories.install_policy(adapters.policies, factories.policy(), default=True)
        async with Worker(
            env.client,
            task_queue=TASK_QUEUE,
            workflows=ALL_WORKFLOWS,
            activities=activities_from(adapters),
            activity_executor=pool,
        ):
            api = Releases(env.client, TASK_QUEUE, signer=signing.signer())
            for scenario in SCENARIOS:
                rid = await scenario(env, api)
                history = await api.handle(rid).fetch_history()
                path = HERE / f"{scenario.__name__}.json"
                path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
                print(f"recorded {path.name}: {len(history.events)} events")
        adapters.close()
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

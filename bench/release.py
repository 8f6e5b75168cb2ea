"""The release side of ``make bench``: a compressed policy, specs, partners, and a driver that
approves each gate the way reviewers would (through :class:`~gatekeeper.releases.Releases`).

The policy is the voluntary standard's six stages with clocks of seconds (a one-second
government window and partner period), built in code so the bench does not depend on a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError

from gatekeeper.adapters.policy_store import PolicyStore, versioned_by_content
from gatekeeper.adapters.registry import AccessRegistry, Partner
from gatekeeper.errors import DecisionRefused, NoAnswer
from gatekeeper.models import (
    AccessGrantStage,
    ApprovalGateStage,
    Artifact,
    Cohort,
    CoveredDesignation,
    DecisionKind,
    DecisionRequest,
    EvidenceKind,
    EvidenceRef,
    GovernmentSubmissionStage,
    GovernmentWindowStage,
    LaunchStage,
    ModelRef,
    NotificationPolicy,
    NotificationRoute,
    Person,
    Policy,
    QuorumRequirement,
    Recipients,
    ReleaseSpec,
    ReleaseStatus,
    RiskTier,
    VettingTier,
)
from gatekeeper.releases import Releases

SUBMITTER = "bench.submitter"
#: Who approves each gate, in the order the pipeline reaches them.
GATES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "internal_review",
        [("sam.safety", "safety"), ("sec.one", "security"), ("lee.legal", "legal")],
    ),
    ("vetted_partner_access", [("sec.two", "security")]),
    ("launch_approval", [("eve.exec", "executive")]),
]
PARTNERS = [
    Partner(
        id="acme-labs", name="Acme Labs", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="us"
    ),
    Partner(id="brit-ai", name="Brit AI", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="gb"),
    Partner(id="invited-co", name="Invited Co", tier=VettingTier.INVITE_ONLY, jurisdiction="us"),
]
#: How soon a driver first asks again whether a release waits at the next gate; the pause
#: doubles up to :data:`POLL_MAX_SECONDS`, so a busy server is not flooded with queries.
POLL_SECONDS = 0.1
POLL_MAX_SECONDS = 1.0
#: What an approval asked again is refused with when the first one landed.
LANDED_RULES = ("already_decided", "not_a_gate")
#: Tries of one approval whose answer timed out under load.
APPROVAL_ATTEMPTS = 5

Poll = Callable[[], Awaitable[bool]]


def bench_policy(window: timedelta, partner_period: timedelta, *, notify: bool = True) -> Policy:
    """Six stages; with ``notify`` every event is routed to the people concerned through the
    outbox (without it nobody is notified, which makes parking many releases cheaper)."""
    roster = [
        Person(id=SUBMITTER, name="Bench Submitter", roles=["release_manager"]),
        Person(id="sam.safety", name="Sam Safety", roles=["safety"]),
        Person(id="sec.one", name="Sec One", roles=["security"]),
        Person(id="sec.two", name="Sec Two", roles=["security"]),
        Person(id="lee.legal", name="Lee Legal", roles=["legal"]),
        Person(id="eve.exec", name="Eve Exec", roles=["executive"]),
        Person(id="olga.ops", name="Olga Ops", roles=["operator"]),
    ]
    applies = [CoveredDesignation.DESIGNATED]
    return Policy(
        policy_id="bench",
        roster=roster,
        cohorts=[
            Cohort(id="gov-approved", tiers=[VettingTier.GOVERNMENT_APPROVED], jurisdictions=["*"]),
            Cohort(id="invite-only", tiers=[VettingTier.INVITE_ONLY], jurisdictions=["*"]),
        ],
        stages=[
            ApprovalGateStage(
                id="internal_review",
                quorum=[QuorumRequirement(roles=[r]) for r in ("safety", "security", "legal")],
            ),
            GovernmentSubmissionStage(id="government_submission", applies_to=applies),
            GovernmentWindowStage(
                id="government_testing_window", duration=window, applies_to=applies
            ),
            AccessGrantStage(
                id="vetted_partner_access",
                minimum_period=partner_period,
                quorum=[QuorumRequirement(roles=["security"])],
            ),
            ApprovalGateStage(
                id="launch_approval", quorum=[QuorumRequirement(roles=["executive"])]
            ),
            LaunchStage(id="public_launch"),
        ],
        notifications=NotificationPolicy(
            routes=[
                NotificationRoute(events=["*"], to=Recipients(concerned=True), channels=["outbox"])
            ]
            if notify
            else []
        ),
    )


def bench_spec(release_id: str) -> ReleaseSpec:
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    return ReleaseSpec(
        release_id=release_id,
        model=ModelRef(name="bench-model", version="1.0.0"),
        artifact=Artifact(uri="https://artifacts.example/bench", sha256=digest("weights")),
        risk_tier=RiskTier.HIGH,
        covered_model=CoveredDesignation.DESIGNATED,
        submitter=SUBMITTER,
        evidence=[
            EvidenceRef(
                id="system-card",
                kind=EvidenceKind.SYSTEM_CARD,
                uri="https://evidence.example/system-card.pdf",
                sha256=digest("card"),
            )
        ],
        partner_cohorts=["gov-approved", "invite-only"],
        regions=["us", "gb"],
    )


def install_policies(registry_url: str, *policies: Policy) -> None:
    """Install each policy in the worker's store under :func:`bench_ref`'s version."""
    with PolicyStore(registry_url) as store:
        for policy in policies:
            store.install(versioned_by_content(policy), by=SUBMITTER)


def bench_ref(policy: Policy) -> str:
    """The reference a release of ``policy`` starts with (installed by :func:`install_policies`)."""
    pinned = versioned_by_content(policy)
    return f"{pinned.policy_id}@{pinned.version}"


def seed_partners(registry_url: str) -> None:
    with AccessRegistry(registry_url) as registry:
        for partner in PARTNERS:
            registry.add_partner(partner)


async def poll_until(check: Poll, *, within: float) -> None:
    """Ask ``check`` until it holds, pausing :data:`POLL_SECONDS`, then twice as long, and so on
    up to :data:`POLL_MAX_SECONDS`."""
    deadline = time.monotonic() + within
    pause = POLL_SECONDS
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {within:g} s")
        await asyncio.sleep(pause)
        pause = min(pause * 2, POLL_MAX_SECONDS)


def at_gate(status: ReleaseStatus, stage: str) -> bool:
    gate = status.gates.get(stage)
    return bool(
        status.stage == stage
        and status.awaiting is not None
        and status.awaiting.roles
        and gate is not None
        and gate.closed_at is None
    )


async def answered_at_gate(releases: Releases, release_id: str, stage: str) -> bool:
    """Whether the release waits at ``stage``'s gate; a status query an overloaded machine
    left unanswered counts as not yet (the caller polls again)."""
    try:
        return at_gate(await releases.status(release_id), stage)
    except NoAnswer:
        return False


async def approve(releases: Releases, release_id: str, decider: str, role: str) -> None:
    """One approval; an answer lost to an overloaded machine (no answer within the client's
    timeout) is asked again (an approval that did land is then refused as already decided, or
    its gate as closed, which is the answer we wanted)."""
    request = DecisionRequest(decider=decider, role=role)
    for attempt in range(APPROVAL_ATTEMPTS):
        try:
            await releases.decide(release_id, DecisionKind.APPROVE, request)
            return
        except (WorkflowUpdateRPCTimeoutOrCancelledError, NoAnswer):
            if attempt + 1 == APPROVAL_ATTEMPTS:
                raise
        except DecisionRefused as refused:
            # Asked again after a lost answer: the first one landed (this person decided, or
            # the gate it closed has moved on).
            if attempt and refused.rule in LANDED_RULES:
                return
            raise


async def drive_release(
    releases: Releases,
    release_id: str,
    policy: Policy,
    latencies: list[float],
    *,
    starting: asyncio.Semaphore | None = None,
    within: float = 600.0,
) -> None:
    """Start a release, approve each gate when it opens, and wait for the launch.

    Before asking whether a gate is open the driver sleeps through the clocks that must run
    first (the baseline's driver does the same), so polling costs both sides alike. Appends each
    approval's round trip (update sent to result received) to ``latencies``.
    """
    async with starting or contextlib.nullcontext():
        with contextlib.suppress(NoAnswer):  # started, but slow to answer: polled below
            await releases.start(bench_spec(release_id), bench_ref(policy))
    for stage, approvers in GATES:
        await asyncio.sleep(clocks_before(policy, stage))

        async def ready(stage: str = stage) -> bool:
            return await answered_at_gate(releases, release_id, stage)

        await poll_until(ready, within=within)
        for decider, role in approvers:
            began = time.perf_counter()
            await approve(releases, release_id, decider, role)
            latencies.append(time.perf_counter() - began)
    await asyncio.wait_for(releases.handle(release_id).result(), within)


def clocks_before(policy: Policy, gate: str) -> float:
    """Seconds of policy clocks that run between the previous gate and ``gate`` opening."""
    seconds = 0.0
    for stage in policy.stages:
        if stage.id == gate:
            if isinstance(stage, AccessGrantStage):
                seconds += stage.minimum_period.total_seconds()
            return seconds
        if isinstance(stage, ApprovalGateStage | AccessGrantStage):
            seconds = 0.0  # the driver was at that gate
        elif isinstance(stage, GovernmentWindowStage):
            seconds += stage.duration.total_seconds()
    return seconds


async def park_release(
    releases: Releases, release_id: str, policy: Policy, *, within: float = 600.0
) -> None:
    """Start a release and pass its internal review; it goes on into the government window."""
    stage, approvers = GATES[0]
    with contextlib.suppress(NoAnswer):  # started, but slow to answer: polled below
        await releases.start(bench_spec(release_id), bench_ref(policy))

    async def reviewing() -> bool:
        return await answered_at_gate(releases, release_id, stage)

    await poll_until(reviewing, within=within)
    for decider, role in approvers:
        await approve(releases, release_id, decider, role)

"""Policies, specs and requests for tests, built in Python so tests do not depend on YAML files."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from gatekeeper.adapters.policy_store import PolicyStore, versioned_by_content
from gatekeeper.canonical import digest_of
from gatekeeper.models import (
    AccessGrantStage,
    ApprovalGateStage,
    Artifact,
    Cohort,
    CoveredDesignation,
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

SUBMITTER = "rita.manager"
LIAISON = "gus.liaison"
OPERATOR = "olga.ops"
AUTHOR = "ada.author"

ROSTER = [
    Person(id=SUBMITTER, name="Rita Manager", roles=["release_manager"]),
    Person(id="sam.safety", name="Sam Safety", roles=["safety"]),
    Person(id="sara.safety", name="Sara Safety", roles=["safety"]),
    Person(id="sec.one", name="Sec One", roles=["security"]),
    Person(id="sec.two", name="Sec Two", roles=["security"]),
    Person(id="lee.legal", name="Lee Legal", roles=["legal"]),
    Person(id="lou.legal", name="Lou Legal", roles=["legal"]),
    Person(id="eve.exec", name="Eve Exec", roles=["executive"]),
    Person(id="ed.exec", name="Ed Exec", roles=["executive"]),
    Person(id=LIAISON, name="Gus Liaison", roles=["government_liaison"]),
    # The operator is also the export control officer: she may exempt from and lift orders.
    Person(id=OPERATOR, name="Olga Ops", roles=["operator", "export_control_officer"]),
    Person(id=AUTHOR, name="Ada Author", roles=["safety"]),
    Person(id="multi.role", name="Multi Role", roles=["safety", "security"]),
    Person(id="rm.reviewer", name="RM Reviewer", roles=["release_manager", "legal"]),
]

REVIEW_QUORUM = [
    QuorumRequirement(roles=["safety"]),
    QuorumRequirement(roles=["security"]),
    QuorumRequirement(roles=["legal"]),
]

COHORTS = [
    Cohort(id="gov-approved", tiers=[VettingTier.GOVERNMENT_APPROVED], jurisdictions=["us", "gb"]),
    Cohort(id="invite-only", tiers=[VettingTier.INVITE_ONLY], jurisdictions=["*"]),
]


def policy(
    *,
    window: timedelta = timedelta(days=30),
    partner_period: timedelta = timedelta(days=14),
    partner_quorum: bool = True,
    **overrides: Any,
) -> Policy:
    """The voluntary standard's six stages, with every event routed to the people concerned."""
    stages = [
        ApprovalGateStage(id="internal_review", quorum=REVIEW_QUORUM),
        GovernmentSubmissionStage(
            id="government_submission",
            applies_to=[
                CoveredDesignation.REQUESTED,
                CoveredDesignation.PENDING,
                CoveredDesignation.DESIGNATED,
            ],
        ),
        GovernmentWindowStage(
            id="government_testing_window",
            duration=window,
            applies_to=[
                CoveredDesignation.REQUESTED,
                CoveredDesignation.PENDING,
                CoveredDesignation.DESIGNATED,
            ],
        ),
        AccessGrantStage(
            id="vetted_partner_access",
            minimum_period=partner_period,
            quorum=[QuorumRequirement(roles=["security"])] if partner_quorum else [],
        ),
        ApprovalGateStage(id="launch_approval", quorum=[QuorumRequirement(roles=["executive"])]),
        LaunchStage(id="public_launch"),
    ]
    data: dict[str, Any] = {
        "policy_id": "test-policy",
        "version": "1",
        "roster": ROSTER,
        "cohorts": COHORTS,
        "stages": stages,
        "notifications": NotificationPolicy(
            routes=[
                NotificationRoute(events=["*"], to=Recipients(concerned=True), channels=["outbox"]),
                NotificationRoute(
                    events=["withdrawn", "held", "launched"],
                    to=Recipients(roles=["operator"], cohorts=["gov-approved"]),
                    channels=["outbox"],
                ),
            ]
        ),
    }
    data.update(overrides)
    return Policy.model_validate(data)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def spec(release_id: str, **overrides: Any) -> ReleaseSpec:
    data: dict[str, Any] = {
        "release_id": release_id,
        "model": ModelRef(name="aurora", version="2.0.0"),
        "artifact": Artifact(uri="https://artifacts.example/aurora-2.0.0", sha256=sha("weights")),
        "risk_tier": RiskTier.HIGH,
        "covered_model": CoveredDesignation.DESIGNATED,
        "submitter": SUBMITTER,
        "evidence": [
            EvidenceRef(
                id="capability-eval",
                kind=EvidenceKind.CAPABILITY_EVALUATION,
                uri="https://evidence.example/capability-eval.pdf",
                sha256=sha("capability v1"),
                authors=[AUTHOR],
            ),
            EvidenceRef(
                id="system-card",
                kind=EvidenceKind.SYSTEM_CARD,
                uri="https://evidence.example/system-card.pdf",
                sha256=sha("card v1"),
            ),
        ],
        "partner_cohorts": ["gov-approved", "invite-only"],
        "regions": ["us", "gb"],
    }
    data.update(overrides)
    return ReleaseSpec.model_validate(data)


def policy_hash(p: Policy) -> str:
    return digest_of(p.model_dump(mode="json"))


#: Who the tests' policy installs are recorded as.
POLICY_ADMIN = "policy.admin"


def install_policy(store: PolicyStore | str, p: Policy, *, default: bool = False) -> str:
    """Install ``p`` into a worker's policy store (the store, or its registry URL); return the
    reference to start a release with.

    Tests build many variants of one policy in code (other clocks, other rosters) under the same
    id and version; each distinct content is installed under its own version (``1+<digest>``).
    """
    pinned = versioned_by_content(p)
    if isinstance(store, str):
        with PolicyStore(store) as opened:
            opened.install(pinned, by=POLICY_ADMIN, default=default)
    else:
        store.install(pinned, by=POLICY_ADMIN, default=default)
    return policy_ref(p)


def policy_ref(p: Policy) -> str:
    """The reference :func:`install_policy` installs ``p`` under."""
    pinned = versioned_by_content(p)
    return f"{pinned.policy_id}@{pinned.version}"


async def start_release(
    releases: Releases, store: PolicyStore | str, spec: ReleaseSpec, p: Policy | None = None
) -> ReleaseStatus:
    """Install ``p`` (default: :func:`policy`) into the worker's store and start ``spec`` under
    it, by reference, as every client does."""
    ref = await asyncio.to_thread(install_policy, store, p or policy())
    return await releases.start(spec, ref)


def decision(decider: str, role: str, **extra: Any) -> DecisionRequest:
    return DecisionRequest(decider=decider, role=role, **extra)


#: Approvals that pass the default internal review (one of each role, none conflicted).
INTERNAL_REVIEW = [("sam.safety", "safety"), ("sec.one", "security"), ("lee.legal", "legal")]

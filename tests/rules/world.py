"""Small policies, specs and release states for the server-free rule tests, built or generated.

Everything here is plain models: no Temporal, no files. ``worlds()`` generates a roster, gates,
evidence authors, decisions at the gates and delegations, the inputs of every gate rule.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gatekeeper.models.enums import (
    CoveredDesignation,
    DecisionKind,
    EvidenceKind,
    RiskTier,
    StageKind,
)
from gatekeeper.models.policy import (
    ApprovalGateStage,
    LaunchStage,
    Person,
    Policy,
    QuorumRequirement,
)
from gatekeeper.models.spec import Artifact, EvidenceRef, ModelRef, ReleaseSpec
from gatekeeper.models.status import (
    Decision,
    Delegation,
    GateState,
    ReleaseStatus,
    StageRecord,
)

#: Enough examples to find a drift, few enough that the whole directory runs in seconds.
EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ROLES = ("safety", "security", "legal", "executive")
MANAGER = "release_manager"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def person(person_id: str, *roles: str, key: str | None = None) -> Person:
    return Person(id=person_id, name=person_id, roles=list(roles), public_key=key)


def req(*roles: str, count: int = 1) -> QuorumRequirement:
    return QuorumRequirement(roles=list(roles), count=count)


def gate(
    gate_id: str, *quorum: QuorumRequirement, covers: list[str] | None = None
) -> ApprovalGateStage:
    return ApprovalGateStage(id=gate_id, quorum=list(quorum), covers=covers or ["*"])


def policy(roster: list[Person], gates: list[ApprovalGateStage], **changes: object) -> Policy:
    data: dict[str, object] = {
        "policy_id": "rules-test",
        "roster": roster,
        "stages": [*gates, LaunchStage(id="launch")],
    }
    data.update(changes)
    return Policy.model_validate(data)


def spec(submitter: str, authors: dict[str, list[str]] | None = None) -> ReleaseSpec:
    """A spec by ``submitter`` with one evidence item per entry of ``authors`` (id → authors)."""
    evidence = [
        EvidenceRef(
            id=item,
            kind=EvidenceKind.SYSTEM_CARD,
            uri=f"https://evidence.example/{item}",
            sha256=sha(item),
            authors=names,
        )
        for item, names in (authors or {}).items()
    ]
    return ReleaseSpec(
        release_id="r-rules",
        model=ModelRef(name="aurora", version="1"),
        artifact=Artifact(uri="https://artifacts.example/aurora", sha256=sha("weights")),
        risk_tier=RiskTier.HIGH,
        covered_model=CoveredDesignation.DESIGNATED,
        submitter=submitter,
        evidence=evidence,
    )


def status(the_policy: Policy, the_spec: ReleaseSpec, gates: dict[str, GateState]) -> ReleaseStatus:
    current = list(gates)[-1] if gates else None
    return ReleaseStatus(
        release_id=the_spec.release_id,
        spec=the_spec,
        policy_id=the_policy.policy_id,
        policy_version=the_policy.version,
        policy_sha256=sha("policy"),
        stage=current,
        stages=[
            StageRecord(id=stage.id, kind=StageKind.APPROVAL_GATE, title=stage.id)
            for stage in the_policy.stages
            if isinstance(stage, ApprovalGateStage)
        ],
        gates=gates,
        started_at=NOW - timedelta(days=2),
        updated_at=NOW,
        audit_head=sha("audit"),
    )


def approval(who: str, role: str, *, for_: str | None = None, valid: bool = True) -> Decision:
    return Decision(
        kind=DecisionKind.APPROVE, person=who, role=role, on_behalf_of=for_, at=NOW, valid=valid
    )


@dataclass(frozen=True)
class World:
    """A release at one of its gates: everything the gate rules read."""

    policy: Policy
    status: ReleaseStatus
    current: ApprovalGateStage
    delegations: list[Delegation]

    @property
    def gate(self) -> GateState:
        return self.status.gates[self.current.id]


_ids = st.sampled_from([f"p{i}" for i in range(7)])
_role_sets = st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """A roster of up to 7, up to 3 gates (each up to 3 requirements), a submitter, evidence
    authors (on the roster or not), any decisions at the gates reached so far and delegations."""
    size = draw(st.integers(min_value=1, max_value=7))
    roster = [
        person(f"p{i}", *draw(_role_sets), *([MANAGER] if draw(st.booleans()) else []))
        for i in range(size)
    ]
    ids = [p.id for p in roster]
    evidence = {
        "e1": draw(st.lists(st.sampled_from([*ids, "outsider"]), max_size=2, unique=True)),
        "e2": draw(st.lists(st.sampled_from([*ids, "outsider"]), max_size=2, unique=True)),
    }
    gates = [
        gate(
            f"g{index}",
            *draw(
                st.lists(
                    st.builds(
                        lambda roles, count: req(*roles, count=count),
                        _role_sets,
                        st.integers(min_value=1, max_value=2),
                    ),
                    min_size=1,
                    max_size=3,
                )
            ),
            covers=draw(st.sampled_from([["*"], ["e1"], ["e2"], ["artifact"]])),
        )
        for index in range(draw(st.integers(min_value=1, max_value=3)))
    ]
    the_policy = policy(roster, gates, distinct_approvers_across_gates=draw(st.booleans()))
    the_spec = spec(draw(st.sampled_from(ids)), evidence)
    reached = draw(st.integers(min_value=0, max_value=len(gates) - 1))
    decision = st.builds(
        Decision,
        kind=st.sampled_from(list(DecisionKind)),
        person=st.sampled_from(ids),
        role=st.sampled_from(ROLES),
        on_behalf_of=st.none() | st.sampled_from(ids),
        at=st.just(NOW - timedelta(hours=1)),
        valid=st.booleans(),
        addressed_at=st.none() | st.just(NOW),
    )
    gates_state = {
        stage.id: GateState(
            stage=stage.id,
            opened_at=NOW - timedelta(days=1),
            closed_at=None if index == reached else NOW - timedelta(hours=2),
            decisions=draw(st.lists(decision, max_size=5)),
        )
        for index, stage in enumerate(gates[: reached + 1])
    }
    delegations = draw(
        st.lists(
            st.builds(
                Delegation,
                by=st.sampled_from(ids),
                to=st.sampled_from(ids),
                role=st.sampled_from(ROLES),
                at=st.just(NOW - timedelta(days=1)),
                until=st.sampled_from([NOW - timedelta(minutes=1), NOW + timedelta(days=1)]),
                revoked_at=st.none() | st.just(NOW - timedelta(minutes=5)),
            ),
            max_size=3,
        )
    )
    the_status = status(the_policy, the_spec, gates_state)
    the_status.delegations = delegations
    return World(the_policy, the_status, gates[reached], delegations)

"""Every rule about deciding at a gate, in the order they are asked, and their three users.

Adding a rule is one module (a :class:`~gatekeeper.rules.base.GateRule`) plus one line in
:data:`GATE_RULES`: authorisation, who is awaited and the feasibility checks then all ask it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings, Policy
from gatekeeper.models.status import Delegation, GateState, ReleaseStatus
from gatekeeper.rules.base import Acting, Attempt, GateRule
from gatekeeper.rules.delegation import DelegatedAuthority
from gatekeeper.rules.distinct import DistinctApprovers
from gatekeeper.rules.expiry import ApprovalExpiry
from gatekeeper.rules.quorum import OncePerGate, QuorumProgress, quorum_progress
from gatekeeper.rules.refusals import Refusal
from gatekeeper.rules.role_held import RoleHeld
from gatekeeper.rules.separation import SeparationOfDuties
from gatekeeper.rules.signatures import SignaturesRequired

ROLE_HELD = RoleHeld()
SEPARATION_OF_DUTIES = SeparationOfDuties()
ONCE_PER_GATE = OncePerGate()
DISTINCT_APPROVERS = DistinctApprovers()
DELEGATION = DelegatedAuthority()
APPROVAL_EXPIRY = ApprovalExpiry()
SIGNATURES = SignaturesRequired()

#: Every gate rule, in the order authorisation asks them (the first refusal is the one raised).
GATE_RULES: tuple[GateRule, ...] = (
    ROLE_HELD,
    SEPARATION_OF_DUTIES,
    ONCE_PER_GATE,
    DISTINCT_APPROVERS,
    DELEGATION,
    APPROVAL_EXPIRY,
    SIGNATURES,
)


def resolve_acting(
    policy: Policy, delegations: Sequence[Delegation], person_id: str, role: str, now: datetime
) -> Acting:
    """The person's own role, or one delegated to them by someone who holds it."""
    return DELEGATION.acting(policy, delegations, person_id, role, now)


def refusal_of(attempt: Attempt) -> Refusal | None:
    """The first refusal any gate rule gives ``attempt``, or None if every rule allows it."""
    for rule in GATE_RULES:
        refusal = rule.refusal(attempt)
        if refusal is not None:
            return refusal
    return None


def authorize_decision(
    *,
    policy: Policy,
    status: ReleaseStatus,
    gate_settings: GateSettings,
    gate: GateState,
    kind: DecisionKind,
    acting: Acting,
) -> None:
    """Every rule a well-formed decision must pass at an open gate. Raises an audited Refusal."""
    refusal = refusal_of(Attempt(policy, status, gate_settings, gate, kind, acting))
    if refusal is not None:
        raise refusal


def eligible_people(
    *,
    policy: Policy,
    status: ReleaseStatus,
    gate_settings: GateSettings,
    gate: GateState,
    roles: Iterable[str],
) -> list[str]:
    """Roster people, in roster order, whom every rule lets approve now in one of ``roles``
    they hold: exactly those :func:`authorize_decision` would let approve in person."""
    wanted = list(roles)
    people: list[str] = []
    for person in policy.roster:
        for role in (r for r in wanted if r in person.roles):
            acting = Acting(person=person.id, role=role)
            attempt = Attempt(policy, status, gate_settings, gate, DecisionKind.APPROVE, acting)
            if refusal_of(attempt) is None:
                people.append(person.id)
                break
    return people


@dataclass(frozen=True)
class Awaited:
    """Whom an open gate waits for: its progress, the roles its quorum still wants, and the
    people every rule lets approve now in one of them (none: nobody left may approve, and the
    gate can only end by its deadline, an operator or a rejection)."""

    progress: QuorumProgress
    roles: list[str]
    people: list[str]

    @property
    def stuck(self) -> bool:
        return not self.progress.met and not self.people


def awaited_at_gate(
    policy: Policy, status: ReleaseStatus, gate_settings: GateSettings, gate: GateState
) -> Awaited:
    """Who ``gate`` awaits: the roles its quorum still wants, and the people every rule lets
    approve in one of them, so an inbox never names a refused approver.

    The roles are the quorum's wanted roles whoever holds them: they are published as the
    ``AwaitingRoles`` search attribute, whose updates are workflow commands, so narrowing them
    would change the commands of releases already running.
    """
    progress = quorum_progress(gate_settings.quorum, gate.valid_approvals())
    wanted = progress.awaited_roles
    people = eligible_people(
        policy=policy, status=status, gate_settings=gate_settings, gate=gate, roles=wanted
    )
    return Awaited(progress, wanted, people)

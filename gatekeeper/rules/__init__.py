"""Who may decide what: roles, delegation, separation of duties, quorum. Pure and deterministic.

The release workflow calls these from its update validators and handlers; they never touch a
clock (``now`` is passed in) or any I/O, so they behave the same in a workflow, a test and replay.

Each rule about deciding at a gate is one object (:mod:`gatekeeper.rules.base` says what it is
asked, :mod:`gatekeeper.rules.registry` lists them) used by authorisation
(:func:`authorize_decision`), by who a gate awaits (:func:`eligible_people`,
:func:`awaited_at_gate`) and by the policy and spec checks (:mod:`gatekeeper.rules.feasibility`).
A refusal carries the rule it broke (:mod:`gatekeeper.rules.refusals`).
"""

from gatekeeper.rules.base import Acting, Attempt, GateRule, Scope
from gatekeeper.rules.budgets import (
    BUDGET_OF,
    FINISHING,
    FINISHING_MAX_BYTES,
    MAX_ACTIVE_DELEGATIONS,
    PADDING_BYTES,
    PAYLOAD,
    PAYLOAD_BUDGET,
    REPEATS,
    REQUEST_BUDGETS,
)
from gatekeeper.rules.delegation import active_delegation
from gatekeeper.rules.people import (
    covered_authors,
    covered_digests,
    require_person,
    require_role,
    roles_by_person,
)
from gatekeeper.rules.quorum import (
    QuorumProgress,
    gate_roles,
    match_places,
    quorum_progress,
    quorum_satisfiable,
)
from gatekeeper.rules.refusals import Refusal, Rule, refuse, refuse_audited
from gatekeeper.rules.registry import (
    APPROVAL_EXPIRY,
    DELEGATION,
    DISTINCT_APPROVERS,
    GATE_RULES,
    ONCE_PER_GATE,
    ROLE_HELD,
    SEPARATION_OF_DUTIES,
    SIGNATURES,
    Awaited,
    authorize_decision,
    awaited_at_gate,
    eligible_people,
    refusal_of,
    resolve_acting,
)

__all__ = [
    "APPROVAL_EXPIRY",
    "BUDGET_OF",
    "DELEGATION",
    "DISTINCT_APPROVERS",
    "FINISHING",
    "FINISHING_MAX_BYTES",
    "GATE_RULES",
    "MAX_ACTIVE_DELEGATIONS",
    "ONCE_PER_GATE",
    "PADDING_BYTES",
    "PAYLOAD",
    "PAYLOAD_BUDGET",
    "REPEATS",
    "REQUEST_BUDGETS",
    "ROLE_HELD",
    "SEPARATION_OF_DUTIES",
    "SIGNATURES",
    "Acting",
    "Attempt",
    "Awaited",
    "GateRule",
    "QuorumProgress",
    "Refusal",
    "Rule",
    "Scope",
    "active_delegation",
    "authorize_decision",
    "awaited_at_gate",
    "covered_authors",
    "covered_digests",
    "eligible_people",
    "gate_roles",
    "match_places",
    "quorum_progress",
    "quorum_satisfiable",
    "refusal_of",
    "refuse",
    "refuse_audited",
    "require_person",
    "require_role",
    "resolve_acting",
    "roles_by_person",
]

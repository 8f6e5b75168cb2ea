"""Who may decide what: roles, delegation, separation of duties, quorum. Pure and deterministic.

The release workflow calls these from its update validators and handlers; they never touch a
clock (``now`` is passed in) or any I/O, so they behave the same in a workflow, a test and replay.

A refusal carries the rule it broke. Two kinds exist (issue: "Refusals"):

* unauthenticated or malformed requests (unknown person, bad signature, terminal release) are
  refused by the update validator and leave no trace in history;
* well-formed, authenticated decisions that break a rule (role not held, self-approval, stale
  stage, duplicate) are refused by the handler, which first records the attempt in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gatekeeper.models.enums import DecisionKind, WellKnownRole
from gatekeeper.models.policy import GateSettings, Person, Policy, QuorumRequirement
from gatekeeper.models.spec import ARTIFACT_KEY, ReleaseSpec
from gatekeeper.models.status import Decision, Delegation, GateState, ReleaseStatus


class Rule(StrEnum):
    """Names of the rules a request can break; also the ``type`` of the error the caller sees."""

    RELEASE_TERMINAL = "release_terminal"
    UNKNOWN_PERSON = "unknown_person"
    SIGNATURE_REQUIRED = "signature_required"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_REPLAYED = "signature_replayed"
    SIGNATURE_STALE = "signature_stale"
    SIGNATURE_UNKNOWN_KEY = "signature_unknown_key"
    SIGNATURE_WRONG_SIGNER = "signature_wrong_signer"
    SIGNATURE_KEY_NOT_VALID = "signature_key_not_valid"
    SIGNATURE_BINDING = "signature_binding"
    NOT_AUTHORISED = "not_authorised"
    WRONG_STAGE = "wrong_stage"
    NOT_A_GATE = "not_a_gate"
    RELEASE_HELD = "release_held"
    ROLE_NOT_HELD = "role_not_held"
    ROLE_NOT_NEEDED = "role_not_needed"
    SEPARATION_OF_DUTIES = "separation_of_duties"
    ALREADY_DECIDED = "already_decided"
    DISTINCT_APPROVERS = "distinct_approvers"
    NOT_SUBMITTER = "not_submitter"
    AMEND_CLOSED_GATE = "amend_closed_gate"
    UNKNOWN_EVIDENCE = "unknown_evidence"
    NO_GOVERNMENT_STAGE = "no_government_stage"
    BAD_DATE = "bad_date"
    DELAY_TOO_LONG = "delay_too_long"
    ALREADY_CLEARED = "already_cleared"
    UNKNOWN_CONCERN = "unknown_concern"
    ALREADY_HELD = "already_held"
    NOT_HELD = "not_held"
    GOVERNMENT_HOLD = "government_hold"
    INVALID_DELEGATION = "invalid_delegation"
    ACCESS_SCOPE = "access_scope"
    SAFEGUARDS_MISSING = "safeguards_missing"
    UNKNOWN_ORDER = "unknown_order"
    LAUNCH_IN_PROGRESS = "launch_in_progress"
    PARTNER_NOT_PROPOSED = "partner_not_proposed"
    UNCHANGED = "unchanged"
    REQUEST_BUDGET_EXHAUSTED = "request_budget_exhausted"
    REQUEST_TOO_LARGE = "request_too_large"


class Refusal(Exception):
    """A request the release will not accept. ``audited`` refusals are recorded before raising."""

    def __init__(self, rule: Rule, message: str, *, audited: bool = False) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.audited = audited


def refuse(rule: Rule, message: str) -> Refusal:
    """An unaudited refusal (validator: malformed or unauthenticated)."""
    return Refusal(rule, message, audited=False)


def refuse_audited(rule: Rule, message: str) -> Refusal:
    """A refusal of an authenticated request that broke a rule: the attempt is audited."""
    return Refusal(rule, message, audited=True)


# --- the request budget ------------------------------------------------------------------------

#: Requests a release accepts, by budget: every accepted request is stored in the release's
#: history, so these bound its size (docs/requests.md computes the worst case). ``refused``
#: counts refusals the handler records in the audit trail; past it, such refusals are refused
#: by the validator instead, unrecorded.
REQUEST_BUDGETS: dict[str, int] = {
    "decisions": 100,
    "amend": 30,
    "government": 50,
    "operator": 50,
    "delegate": 30,
    "access": 50,
    "partners": 50,
    "refused": 100,
}

#: Bytes of accepted request payloads (their JSON) a release takes in all, refused or not: each
#: is stored in history and echoed in the audit trail and the workflow's result.
PAYLOAD_BUDGET = 256 * 1024
PAYLOAD = "payload_bytes"
#: The largest finishing request taken once its budget is spent (an approval with a full comment
#: and a signature is under 3 KB; a partner-list decision names about 50 partners in 4 KB).
FINISHING_MAX_BYTES = 4 * 1024
#: A request's payload may be at most twice its compact JSON plus this: whitespace is stored in
#: history like anything else.
PADDING_BYTES = 4 * 1024

#: The budget each update draws on.
BUDGET_OF: dict[str, str] = {
    "approve": "decisions",
    "reject": "decisions",
    "request_changes": "decisions",
    "amend": "amend",
    "record_government_response": "government",
    "hold": "operator",
    "resume": "operator",
    "withdraw": "operator",
    "delegate": "delegate",
    "revoke_delegation": "delegate",
    "attest_authorship": "amend",
    "suspend_access": "access",
    "restore_access": "access",
    "approve_partners": "partners",
}

#: Requests that move a release towards its end; accepted past their budget whenever they
#: change something, so a spent budget never strands a release. Each is bounded by the state it
#: undoes (a hold, a suspension, an undecided partner, a missing approval, an open concern).
FINISHING: frozenset[str] = frozenset(
    {
        "withdraw",
        "reject",
        "approve",
        "resume",
        "restore_access",
        "approve_partners",
        "cleared",
        "concern_resolved",
    }
)

#: Refusals of a request that would change nothing (a repeat): refused by the validator, never
#: recorded, whatever the budget.
REPEATS: frozenset[Rule] = frozenset(
    {Rule.ALREADY_DECIDED, Rule.ALREADY_HELD, Rule.NOT_HELD, Rule.ALREADY_CLEARED, Rule.UNCHANGED}
)

#: Active (unexpired, unrevoked) delegations one release keeps at once.
MAX_ACTIVE_DELEGATIONS = 20


# --- people and roles -------------------------------------------------------------------------


def require_person(policy: Policy, person_id: str) -> Person:
    person = policy.person(person_id)
    if person is None:
        raise refuse(
            Rule.UNKNOWN_PERSON,
            f"unknown person '{person_id}': not on the roster of policy {policy.policy_id}",
        )
    return person


def require_role(policy: Policy, person_id: str, role: str) -> Person:
    """The person, if they hold ``role`` on the roster (used for liaison and operator actions)."""
    person = require_person(policy, person_id)
    if role not in person.roles:
        raise refuse_audited(
            Rule.ROLE_NOT_HELD,
            f"{person_id} does not hold role '{role}' (holds: {', '.join(person.roles)})",
        )
    return person


@dataclass(frozen=True)
class Acting:
    """Who is deciding: the person at the keyboard and, under delegation, whose role they use."""

    person: str
    role: str
    on_behalf_of: str | None = None

    @property
    def principal(self) -> str:
        return self.on_behalf_of or self.person

    @property
    def identities(self) -> frozenset[str]:
        return frozenset({self.person, self.principal})


def active_delegation(
    delegations: Iterable[Delegation], *, to: str, role: str, now: datetime
) -> Delegation | None:
    for item in delegations:
        if item.to == to and item.role == role and item.revoked_at is None and item.until > now:
            return item
    return None


def resolve_acting(
    policy: Policy, delegations: Sequence[Delegation], person_id: str, role: str, now: datetime
) -> Acting:
    """The person's own role, or one delegated to them by someone who holds it."""
    person = require_person(policy, person_id)
    if role in person.roles:
        return Acting(person=person_id, role=role)
    delegation = active_delegation(delegations, to=person_id, role=role, now=now)
    if delegation is not None:
        delegator = policy.person(delegation.by)
        if delegator is not None and role in delegator.roles:
            return Acting(person=person_id, role=role, on_behalf_of=delegation.by)
    raise refuse_audited(
        Rule.ROLE_NOT_HELD,
        f"{person_id} does not hold role '{role}' (holds: {', '.join(person.roles)}) "
        "and has no delegation for it",
    )


# --- what a gate covers --------------------------------------------------------------------------


def covered_digests(gate: GateSettings, spec: ReleaseSpec) -> dict[str, str]:
    """Digest of every item a gate approves: by evidence id, evidence kind, 'artifact' or '*'."""
    covers = set(gate.covers)
    everything = "*" in covers
    result: dict[str, str] = {}
    if everything or ARTIFACT_KEY in covers:
        result[ARTIFACT_KEY] = spec.artifact.sha256
    for item in spec.evidence:
        if everything or item.id in covers or item.kind.value in covers:
            result[item.id] = item.sha256
    return result


def covered_authors(gate: GateSettings, spec: ReleaseSpec) -> dict[str, list[str]]:
    """Evidence ids each author wrote, restricted to what the gate covers."""
    covered = covered_digests(gate, spec)
    authors: dict[str, list[str]] = {}
    for item in spec.evidence:
        if item.id in covered:
            for author in item.authors:
                authors.setdefault(author, []).append(item.id)
    return authors


# --- quorum --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuorumProgress:
    """How far a gate's quorum is: ``remaining[i]`` more people needed for requirement ``i``."""

    requirements: tuple[QuorumRequirement, ...]
    remaining: tuple[int, ...]

    @property
    def met(self) -> bool:
        return all(n == 0 for n in self.remaining)

    @property
    def awaited_roles(self) -> list[str]:
        roles: list[str] = []
        for requirement, missing in zip(self.requirements, self.remaining, strict=True):
            if missing:
                roles.extend(r for r in requirement.roles if r not in roles)
        return roles

    def describe(self) -> str:
        parts = [
            f"{req.describe()} ({req.count - missing}/{req.count})"
            for req, missing in zip(self.requirements, self.remaining, strict=True)
        ]
        return ", ".join(parts) if parts else "no quorum"


def quorum_progress(
    requirements: Sequence[QuorumRequirement], approvals: Sequence[Decision]
) -> QuorumProgress:
    """Assign approvals to requirement slots so each person fills at most one slot.

    A bipartite matching (augmenting paths): with overlapping requirements ("one safety" and "two
    of safety/security/legal") a greedy count would let one approval count twice.
    """
    slots = [index for index, req in enumerate(requirements) for _ in range(req.count)]
    owner: list[int | None] = [None] * len(slots)

    def assign(approval: int, seen: set[int]) -> bool:
        role = approvals[approval].role
        for slot, requirement_index in enumerate(slots):
            if slot in seen or role not in requirements[requirement_index].roles:
                continue
            seen.add(slot)
            current = owner[slot]
            if current is None or assign(current, seen):
                owner[slot] = approval
                return True
        return False

    for approval_index in range(len(approvals)):
        assign(approval_index, set())
    remaining = [req.count for req in requirements]
    for slot, requirement_index in enumerate(slots):
        if owner[slot] is not None:
            remaining[requirement_index] -= 1
    return QuorumProgress(tuple(requirements), tuple(remaining))


def gate_roles(gate: GateSettings) -> list[str]:
    roles: list[str] = []
    for requirement in gate.quorum:
        roles.extend(r for r in requirement.roles if r not in roles)
    return roles


def eligible_people(
    policy: Policy, gate: GateSettings, spec: ReleaseSpec, roles: Iterable[str]
) -> list[str]:
    """Roster people who hold one of ``roles`` and whom separation of duties lets approve."""
    conflicted = {spec.submitter, *covered_authors(gate, spec)}
    wanted = set(roles)
    return [p.id for p in policy.roster if wanted.intersection(p.roles) and p.id not in conflicted]


# --- decisions -----------------------------------------------------------------------------------


def _decider_ids(decision: Decision) -> set[str]:
    return {decision.person, decision.on_behalf_of or decision.person}


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
    stage = gate.stage
    needed = gate_roles(gate_settings)
    if acting.role not in needed:
        raise refuse_audited(
            Rule.ROLE_NOT_NEEDED,
            f"role '{acting.role}' does not decide {stage} (it needs: {', '.join(needed)})",
        )
    if kind is DecisionKind.APPROVE:
        _check_separation_of_duties(status.spec, gate_settings, stage, acting)
    for previous in gate.decisions:
        if not previous.valid or not (_decider_ids(previous) & acting.identities):
            continue
        if previous.kind is DecisionKind.APPROVE and kind is DecisionKind.APPROVE:
            who = previous.on_behalf_of or previous.person
            raise refuse_audited(
                Rule.ALREADY_DECIDED,
                f"{who} already approved {stage} at {previous.at:%Y-%m-%d %H:%M} UTC; "
                "a person counts once per gate",
            )
        if (
            previous.kind is DecisionKind.REQUEST_CHANGES
            and previous.addressed_at is None
            and kind is DecisionKind.REQUEST_CHANGES
        ):
            raise refuse_audited(
                Rule.ALREADY_DECIDED,
                f"{previous.person} already asked for changes at {stage}; waiting for an amend",
            )
    if kind is DecisionKind.APPROVE and policy.distinct_approvers_across_gates:
        for other_id, other in status.gates.items():
            if other_id == stage:
                continue
            for previous in other.valid_approvals():
                if _decider_ids(previous) & acting.identities:
                    raise refuse_audited(
                        Rule.DISTINCT_APPROVERS,
                        f"{acting.principal} already approved {other_id}; this policy needs "
                        "different approvers at each gate",
                    )


def _check_separation_of_duties(
    spec: ReleaseSpec, gate_settings: GateSettings, stage: str, acting: Acting
) -> None:
    authors = covered_authors(gate_settings, spec)
    for who in (acting.person, acting.on_behalf_of):
        if who is None:
            continue
        suffix = "" if who == acting.person else f" (delegated by {who})"
        if who == spec.submitter:
            raise refuse_audited(
                Rule.SEPARATION_OF_DUTIES,
                f"{who} submitted this release and cannot approve it{suffix} "
                "(separation of duties)",
            )
        if who in authors:
            items = ", ".join(authors[who])
            raise refuse_audited(
                Rule.SEPARATION_OF_DUTIES,
                f"{who} authored evidence {items} that {stage} covers and cannot approve it"
                f"{suffix} (separation of duties)",
            )


def is_operator(policy: Policy, person_id: str) -> bool:
    person = policy.person(person_id)
    return person is not None and WellKnownRole.OPERATOR.value in person.roles

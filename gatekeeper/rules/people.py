"""Who is on the roster, and what a gate covers: the facts every rule reads."""

from __future__ import annotations

from gatekeeper.models.policy import GateSettings, Person, Policy
from gatekeeper.models.spec import ARTIFACT_KEY, ReleaseSpec
from gatekeeper.rules.refusals import Rule, refuse, refuse_audited


def require_person(policy: Policy, person_id: str) -> Person:
    """The roster entry of ``person_id``; an unaudited refusal if there is none."""
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


def roles_by_person(policy: Policy) -> dict[str, set[str]]:
    """Each roster id and the roles it holds, in roster order.

    A duplicated id is reported by the policy check on its own; merging keeps it from causing
    phantom problems elsewhere.
    """
    people: dict[str, set[str]] = {}
    for person in policy.roster:
        people.setdefault(person.id, set()).update(person.roles)
    return people


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

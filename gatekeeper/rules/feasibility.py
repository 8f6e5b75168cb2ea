"""Can a policy, or a release under it, ever pass its gates? Asked of every rule at once.

A gate's quorum can be met when its places can be filled by different people, each holding one
of the place's roles and set aside by no rule (:meth:`GateRule.sets_aside`); when a rule pools
gates (:meth:`GateRule.pools_gates`, distinct approvers) every pooled place needs a different
person. The filling is the one quorum matcher, :func:`gatekeeper.rules.quorum.match_places`.

The policy check (:mod:`gatekeeper.policy`) asks before any release exists, so for each person who
could submit one; the spec check (:mod:`gatekeeper.spec`) asks with the release's submitter and
evidence authors known.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatekeeper.models.enums import WellKnownRole
from gatekeeper.models.policy import (
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    Policy,
    Stage,
)
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.rules import registry
from gatekeeper.rules.base import Findings, Scope
from gatekeeper.rules.people import covered_authors, roles_by_person
from gatekeeper.rules.quorum import match_places

_RELEASE_MANAGER = WellKnownRole.RELEASE_MANAGER.value


def can_be_met(scope: Scope, gates: Sequence[GateSettings]) -> bool:
    """Whether different people can fill every place of ``gates`` at once, under ``scope``."""
    places = [
        (index, frozenset(req.roles))
        for index, gate in enumerate(gates)
        for req in gate.quorum
        for _ in range(req.count)
    ]
    people = list(roles_by_person(scope.policy).items())
    if len(places) > len(people):
        return False
    aside = [
        {
            person
            for person, _ in people
            if any(r.sets_aside(scope, gate, person) for r in registry.GATE_RULES)
        }
        for gate in gates
    ]

    def fits(place: int, candidate: int) -> bool:
        gate_index, roles = places[place]
        person, held = people[candidate]
        return not roles.isdisjoint(held) and person not in aside[gate_index]

    return None not in match_places(len(places), len(people), fits)


def pooled(scope: Scope) -> bool:
    """Whether some rule needs every gate filled by different people at once."""
    return any(rule.pools_gates(scope.policy) for rule in registry.GATE_RULES)


def gate_problem(scope: Scope, gate: GateSettings) -> str | None:
    """Why ``gate``'s quorum can never be met under the policy alone, or None.

    It must be met by the roster, and still if any one of the release managers submits.
    """
    wanted = "; ".join(req.describe() for req in gate.quorum)
    if not can_be_met(scope, [gate]):
        return (
            f"cannot be met ({wanted}): a person counts once across the gate, and the roster has "
            "too few distinct people holding these roles"
        )
    for manager in (p.id for p in scope.policy.people_with_role(_RELEASE_MANAGER)):
        if not can_be_met(Scope(scope.policy, submitter=manager), [gate]):
            return (
                f"cannot be met if {manager} submits a release ({wanted}): a submitter never "
                "approves their own release"
            )
    return None


def pooled_problems(scope: Scope, *, gates_workable: bool) -> Findings:
    """When a rule pools the gates (distinct approvers): whether all of them can be met at once,
    by the roster and whichever release manager submits. Asked only when each gate alone is
    workable (``gates_workable``), so one problem is not reported twice."""
    policy = scope.policy
    gates = _gates(policy.stages)
    if not gates_workable or not pooled(scope):
        return []
    if not can_be_met(scope, gates):
        count = sum(len(gate.quorum) for gate in gates)
        message = (
            f"cannot be met: every gate needs different approvers ({count} "
            "requirements in all), and the roster has too few people holding those roles"
        )
        return [(("distinct_approvers_across_gates",), message)]
    for manager in (p.id for p in policy.people_with_role(_RELEASE_MANAGER)):
        if not can_be_met(Scope(policy, submitter=manager), gates):
            message = (
                f"cannot be met if {manager} submits a release: every gate needs different "
                "approvers, and a submitter never approves their own release"
            )
            return [(("distinct_approvers_across_gates",), message)]
    return []


def rule_problems(scope: Scope) -> Findings:
    """Every rule's own problems with the policy (:meth:`GateRule.policy_problems`)."""
    return [found for rule in registry.GATE_RULES for found in rule.policy_problems(scope.policy)]


def spec_problems(policy: Policy, spec: ReleaseSpec) -> Findings:
    """Gates the release's quorum can never pass once its submitter and the authors of the
    evidence each gate covers are set aside.

    Each gate is asked alone, even when a rule pools them: the workflow runs this check when a
    release starts, so a stricter check would refuse, on replay, releases that started under
    this one (a pooled check needs a ``workflow.patched`` guard in the workflow first).
    """
    people = roles_by_person(policy)
    found: Findings = []
    gates = [
        stage
        for stage in _gates(policy.stages)
        if spec.covered_model in stage.applies_to and stage.quorum
    ]
    known = Scope.of_spec(policy, spec)
    without_submitter = Scope(policy, submitter=spec.submitter)
    for gate in gates:
        wanted = "; ".join(req.describe() for req in gate.quorum)
        if not can_be_met(without_submitter, [gate]):
            message = (
                f"gate '{gate.id}' ({wanted}) cannot be met without the submitter, "
                "who may not approve their own release"
            )
            found.append((("submitter",), message))
        elif not can_be_met(known, [gate]):
            authors = set(covered_authors(gate, spec)) - {spec.submitter}
            names = ", ".join(sorted(authors & people.keys()))
            message = (
                f"gate '{gate.id}' ({wanted}) cannot be met: {names} authored evidence it covers, "
                "and authors may not approve their own evidence"
            )
            found.append((("evidence",), message))
    return found


def _gates(stages: Sequence[Stage]) -> list[ApprovalGateStage | AccessGrantStage]:
    return [stage for stage in stages if isinstance(stage, ApprovalGateStage | AccessGrantStage)]

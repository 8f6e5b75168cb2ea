"""Quorums: the one matcher of quorum places to people, and how far a gate's quorum is.

A quorum is a list of requirements, each ``count`` places that a person holding one of its
``roles`` fills. A person fills at most one place across the gate, whatever roles they hold, so
"is the quorum met" is a bipartite matching of places to people, not a count: with overlapping
requirements ("one safety" and "two of safety/security/legal") a greedy count would let one
person fill two places.

:func:`match_places` is that matching, and the only one: approvals at a running gate
(:func:`quorum_progress`), the roster at policy load and the roster minus the people a release
sets aside at spec check (:func:`quorum_satisfiable`, :mod:`gatekeeper.rules.feasibility`) all go
through it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings, QuorumRequirement
from gatekeeper.models.status import Decision
from gatekeeper.rules.base import Attempt, GateRule, decider_ids
from gatekeeper.rules.refusals import Refusal, Rule, refuse_audited


def match_places(
    places: int, candidates: int, fits: Callable[[int, int], bool]
) -> list[int | None]:
    """A maximum matching of ``places`` to ``candidates``: for each place, its candidate or None.

    ``fits(place, candidate)`` says whether the candidate may fill the place. Candidates are
    placed in order, each trying places in order and displacing an earlier candidate only along
    an augmenting path (Kuhn's algorithm), so the result is deterministic for a given input.
    """
    owner: list[int | None] = [None] * places

    def assign(candidate: int, seen: set[int]) -> bool:
        for place in range(places):
            if place in seen or not fits(place, candidate):
                continue
            seen.add(place)
            current = owner[place]
            if current is None or assign(current, seen):
                owner[place] = candidate
                return True
        return False

    for candidate in range(candidates):
        if None not in owner:
            break
        assign(candidate, set())
    return owner


def places_of(requirements: Sequence[QuorumRequirement]) -> list[int]:
    """The requirement index of each place: ``count`` places per requirement, in order."""
    return [index for index, req in enumerate(requirements) for _ in range(req.count)]


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
    """Assign approvals to the quorum's places, each approval filling at most one.

    Each valid approval at a gate is a different person (a person counts once per gate, see
    :class:`OncePerGate`), so matching approvals is matching people.
    """
    slots = places_of(requirements)
    owner = match_places(
        len(slots),
        len(approvals),
        lambda place, approval: approvals[approval].role in requirements[slots[place]].roles,
    )
    remaining = [req.count for req in requirements]
    for place, requirement_index in enumerate(slots):
        if owner[place] is not None:
            remaining[requirement_index] -= 1
    return QuorumProgress(tuple(requirements), tuple(remaining))


def quorum_satisfiable(
    requirements: Sequence[QuorumRequirement], people: Mapping[str, Collection[str]]
) -> bool:
    """Whether distinct people can fill every requirement at once, each person counting once.

    ``people`` maps a person to the roles they can act in (on the roster, or in which they
    approved). A requirement ``{roles: [safety, security], count: 2}`` needs two people each
    holding one of those roles; a person holding both still fills one place.
    """
    slots = places_of(requirements)
    if len(slots) > len(people):
        return False
    roles = [frozenset(held) for held in people.values()]
    owner = match_places(
        len(slots),
        len(roles),
        lambda place, person: not roles[person].isdisjoint(requirements[slots[place]].roles),
    )
    return None not in owner


def gate_roles(gate: GateSettings) -> list[str]:
    """Every role the gate's quorum names, in order: the roles that decide the gate."""
    roles: list[str] = []
    for requirement in gate.quorum:
        roles.extend(r for r in requirement.roles if r not in roles)
    return roles


class OncePerGate(GateRule):
    """A person counts once per gate: one approval each, one open change request each.

    A delegate and the person they act for are one voice: a decision speaks for both. The quorum
    itself (places filled by different people) is checked by the matcher, for progress at a
    running gate and for feasibility before one runs.
    """

    rule = Rule.ALREADY_DECIDED

    def refusal(self, attempt: Attempt) -> Refusal | None:
        kind = attempt.kind
        for previous in attempt.gate.decisions:
            if not previous.valid or not (decider_ids(previous) & attempt.acting.identities):
                continue
            if previous.kind is DecisionKind.APPROVE and kind is DecisionKind.APPROVE:
                who = previous.on_behalf_of or previous.person
                return refuse_audited(
                    self.rule,
                    f"{who} already approved {attempt.stage} at {previous.at:%Y-%m-%d %H:%M} UTC; "
                    "a person counts once per gate",
                )
            if (
                previous.kind is DecisionKind.REQUEST_CHANGES
                and previous.addressed_at is None
                and kind is DecisionKind.REQUEST_CHANGES
            ):
                return refuse_audited(
                    self.rule,
                    f"{previous.person} already asked for changes at {attempt.stage}; "
                    "waiting for an amend",
                )
        return None

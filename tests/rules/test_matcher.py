"""The one quorum matcher fills as many places as any assignment could, each person once."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.models.policy import QuorumRequirement
from gatekeeper.rules import match_places, quorum_progress, quorum_satisfiable
from tests.rules.world import EXAMPLES, ROLES, approval

_roles = st.frozensets(st.sampled_from(ROLES), min_size=1, max_size=3)
_requirements = st.lists(
    st.builds(
        lambda roles, count: QuorumRequirement(roles=sorted(roles), count=count),
        _roles,
        st.integers(min_value=1, max_value=3),
    ),
    max_size=4,
)
_people = st.lists(st.frozensets(st.sampled_from(ROLES), max_size=3), max_size=6)


def brute_force(places: int, candidates: int, fits: Callable[[int, int], bool]) -> int:
    """The most places any assignment fills: every place tries every unused candidate."""

    def best(place: int, used: frozenset[int]) -> int:
        if place == places:
            return 0
        found = best(place + 1, used)
        for candidate in range(candidates):
            if candidate not in used and fits(place, candidate):
                found = max(found, 1 + best(place + 1, used | {candidate}))
        return found

    return best(0, frozenset())


def places(requirements: list[QuorumRequirement]) -> list[frozenset[str]]:
    return [frozenset(req.roles) for req in requirements for _ in range(req.count)]


class TestMatcher:
    """A maximum matching, valid, and the same answer a brute-force search gives."""

    @EXAMPLES
    @given(st.lists(_roles, max_size=5), _people)
    def test_fills_as_many_places_as_brute_force(
        self, wanted: list[frozenset[str]], people: list[frozenset[str]]
    ) -> None:
        def fits(place: int, candidate: int) -> bool:
            return not wanted[place].isdisjoint(people[candidate])

        owner = match_places(len(wanted), len(people), fits)
        filled = [(place, who) for place, who in enumerate(owner) if who is not None]
        assert len(filled) == brute_force(len(wanted), len(people), fits)
        assert all(fits(place, who) for place, who in filled), "a person fills a place they fit"
        assert len({who for _, who in filled}) == len(filled), "a person fills one place"

    @EXAMPLES
    @given(_requirements, _people)
    def test_satisfiable_exactly_when_brute_force_fills_every_place(
        self, requirements: list[QuorumRequirement], people: list[frozenset[str]]
    ) -> None:
        wanted = places(requirements)
        best = brute_force(
            len(wanted), len(people), lambda p, c: not wanted[p].isdisjoint(people[c])
        )
        by_person = {f"p{index}": roles for index, roles in enumerate(people)}
        assert quorum_satisfiable(requirements, by_person) is (best == len(wanted))

    @EXAMPLES
    @given(_requirements, st.lists(st.sampled_from(ROLES), max_size=7))
    def test_progress_counts_each_approval_once_and_as_far_as_it_can_go(
        self, requirements: list[QuorumRequirement], roles: list[str]
    ) -> None:
        approvals = [approval(f"p{index}", role) for index, role in enumerate(roles)]
        progress = quorum_progress(requirements, approvals)
        wanted = places(requirements)
        best = brute_force(len(wanted), len(roles), lambda p, c: roles[c] in wanted[p])
        assert sum(progress.remaining) == len(wanted) - best
        assert all(
            0 <= left <= req.count
            for left, req in zip(progress.remaining, requirements, strict=True)
        )
        assert progress.met is (best == len(wanted))

    def test_overlapping_requirements_do_not_count_one_approval_twice(self) -> None:
        requirements = [
            QuorumRequirement(roles=["safety"]),
            QuorumRequirement(roles=["safety", "security", "legal"], count=2),
        ]
        progress = quorum_progress(requirements, [approval("p0", "safety")])
        assert progress.remaining == (0, 2)
        assert progress.describe() == "1 × safety (1/1), 2 × safety or security or legal (0/2)"
        later = quorum_progress(
            requirements,
            [approval("p0", "safety"), approval("p1", "legal"), approval("p2", "safety")],
        )
        assert later.met, "the second safety approval moves the first along an augmenting path"

"""Who a gate awaits is exactly who may approve there: eligible implies authorised.

Generated releases (rosters, gates, evidence authors, decisions and delegations of every kind,
valid or not) are asked both questions through the functions the ledger calls:
``awaited_at_gate``/``eligible_people`` for the awaited list, and ``resolve_acting`` +
``authorize_decision`` for an approval.
"""

from __future__ import annotations

from hypothesis import given

from gatekeeper.models.enums import DecisionKind
from gatekeeper.rules import (
    Refusal,
    authorize_decision,
    awaited_at_gate,
    eligible_people,
    quorum_progress,
    resolve_acting,
)
from tests.rules.world import EXAMPLES, NOW, World, worlds


def may_approve(world: World, person: str, role: str) -> bool:
    """Whether ``person`` approving as ``role`` now passes every rule, as the ledger asks it."""
    try:
        acting = resolve_acting(world.policy, world.delegations, person, role, NOW)
        authorize_decision(
            policy=world.policy,
            status=world.status,
            gate_settings=world.current,
            gate=world.gate,
            kind=DecisionKind.APPROVE,
            acting=acting,
        )
    except Refusal:
        return False
    return True


class TestEligibleImpliesAuthorised:
    """Nobody the release awaits is refused; nobody who may approve in person is left out."""

    @EXAMPLES
    @given(worlds())
    def test_awaited_are_exactly_those_who_may_approve_in_person(self, world: World) -> None:
        wanted = quorum_progress(world.current.quorum, world.gate.valid_approvals()).awaited_roles
        awaited = awaited_at_gate(world.policy, world.status, world.current, world.gate)
        for person in world.policy.roster:
            mine = [role for role in wanted if role in person.roles]
            allowed = any(may_approve(world, person.id, role) for role in mine)
            if person.id in awaited.people:
                assert allowed, f"{person.id} is awaited at {world.current.id} but refused"
                assert set(awaited.roles) & set(person.roles), "awaited in a role they hold"
            else:
                assert not allowed, f"{person.id} may approve but is not awaited"
        assert awaited.people == eligible_people(
            policy=world.policy,
            status=world.status,
            gate_settings=world.current,
            gate=world.gate,
            roles=wanted,
        )
        assert awaited.roles == wanted, "the roles are the quorum's wanted roles"
        assert awaited.stuck is (not awaited.people and not awaited.progress.met)

"""Delegation: a person decides in a role someone else holds, for them, until it ends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from gatekeeper.models.policy import GateSettings, Policy
from gatekeeper.models.status import Delegation
from gatekeeper.rules.base import Acting, GateRule, Scope
from gatekeeper.rules.people import require_person
from gatekeeper.rules.refusals import Rule, refuse_audited


def active_delegation(
    delegations: Iterable[Delegation], *, to: str, role: str, now: datetime
) -> Delegation | None:
    """The delegation of ``role`` to ``to`` that stands at ``now`` (unexpired, unrevoked)."""
    for item in delegations:
        if item.to == to and item.role == role and item.revoked_at is None and item.until > now:
            return item
    return None


class DelegatedAuthority(GateRule):
    """Who is acting: the person in a role they hold, or in one delegated to them by someone who
    holds it, on that person's behalf.

    A delegate speaks for a roster holder, and every other rule checks both (a decision speaks
    for the delegate and the delegator), so a delegation never adds a person to a quorum:
    feasibility sets no one aside for it and adds no one. Who a gate awaits names roster people
    in their own roles; a delegate finds the release by its awaited roles.
    """

    rule = Rule.ROLE_NOT_HELD

    def acting(
        self,
        policy: Policy,
        delegations: Sequence[Delegation],
        person_id: str,
        role: str,
        now: datetime,
    ) -> Acting:
        """Who decides as ``role``, or an audited refusal if ``person_id`` may not."""
        person = require_person(policy, person_id)
        if role in person.roles:
            return Acting(person=person_id, role=role)
        delegation = active_delegation(delegations, to=person_id, role=role, now=now)
        if delegation is not None:
            delegator = policy.person(delegation.by)
            if delegator is not None and role in delegator.roles:
                return Acting(person=person_id, role=role, on_behalf_of=delegation.by)
        raise refuse_audited(
            self.rule,
            f"{person_id} does not hold role '{role}' (holds: {', '.join(person.roles)}) "
            "and has no delegation for it",
        )

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        del scope, gate, person
        return False

"""Role held: a decision at a gate is made in one of the roles its quorum names."""

from __future__ import annotations

from gatekeeper.models.policy import GateSettings
from gatekeeper.rules.base import Attempt, GateRule, Scope
from gatekeeper.rules.quorum import gate_roles
from gatekeeper.rules.refusals import Refusal, Rule, refuse_audited


class RoleHeld(GateRule):
    """Only the roles a gate's quorum names decide it.

    Whether the person holds the role (or has it by delegation) is settled before, when the
    acting role is resolved (:class:`gatekeeper.rules.delegation.Delegation`). For feasibility,
    a place is filled only by someone holding one of its roles: that is the matcher's own test,
    so this rule sets no one aside.
    """

    rule = Rule.ROLE_NOT_NEEDED

    def refusal(self, attempt: Attempt) -> Refusal | None:
        needed = gate_roles(attempt.settings)
        if attempt.acting.role in needed:
            return None
        return refuse_audited(
            self.rule,
            f"role '{attempt.acting.role}' does not decide {attempt.stage} "
            f"(it needs: {', '.join(needed)})",
        )

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        del scope, gate, person
        return False

"""Signatures required: under ``require_signed_decisions`` every decision is signed."""

from __future__ import annotations

from datetime import timedelta

from gatekeeper.models.base import format_duration
from gatekeeper.models.policy import GateSettings, Policy
from gatekeeper.rules.base import Findings, GateRule, Scope
from gatekeeper.rules.quorum import gate_roles
from gatekeeper.rules.refusals import Refusal, Rule, refuse


class SignaturesRequired(GateRule):
    """A policy that requires signed decisions refuses an unsigned one, before anything is
    recorded (the update validator asks :meth:`unsigned`; whether a signature verifies is the
    signature checks' business).

    Whoever can approve needs a key: the policy check asks it of every roster person holding a
    gate role (:meth:`policy_problems`). A key may also be registered outside the roster (the
    identity registry), so at a running gate this rule sets no one aside and awaits everyone.
    """

    rule = Rule.SIGNATURE_REQUIRED

    def unsigned(self, policy: Policy, person_id: str, signed: bool) -> Refusal | None:
        """The unaudited refusal of an unsigned decision under a policy that requires them."""
        if signed or not policy.require_signed_decisions:
            return None
        return refuse(
            self.rule,
            f"policy {policy.policy_id} requires signed decisions; sign with "
            f"`gatekeeper keys generate --as {person_id}` and the CLI's --key",
        )

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        del scope, gate, person
        return False

    def policy_problems(self, policy: Policy) -> Findings:
        found: Findings = []
        if policy.signature_max_age <= timedelta(0):
            age = policy.signature_max_age
            shown = "-" + format_duration(-age) if age < timedelta(0) else format_duration(age)
            found.append((("signature_max_age",), f"must be longer than zero (got {shown})"))
        if not policy.require_signed_decisions:
            return found
        approving = {
            role
            for stage in policy.stages
            if isinstance(stage, GateSettings)
            for role in gate_roles(stage)
        }
        for index, person in enumerate(policy.roster):
            roles = sorted(approving.intersection(person.roles))
            if roles and person.public_key is None:
                message = (
                    f"{person.id} has no public_key, but the policy requires signed decisions "
                    f"and they can approve as {', '.join(roles)}"
                )
                found.append((("roster", index), message))
        return found

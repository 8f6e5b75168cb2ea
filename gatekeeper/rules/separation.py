"""Separation of duties: nobody approves their own release or evidence they wrote."""

from __future__ import annotations

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings
from gatekeeper.rules.base import Attempt, GateRule, Scope
from gatekeeper.rules.people import covered_authors
from gatekeeper.rules.refusals import Refusal, Rule, refuse_audited


class SeparationOfDuties(GateRule):
    """The submitter never approves the release; an author never approves a gate covering
    evidence they wrote (declared in the spec or attested). Under delegation both the delegate
    and the person they act for are checked. Rejecting and asking for changes stay open to all.
    """

    rule = Rule.SEPARATION_OF_DUTIES

    def refusal(self, attempt: Attempt) -> Refusal | None:
        if attempt.kind is not DecisionKind.APPROVE:
            return None
        spec = attempt.spec
        authors = covered_authors(attempt.settings, spec)
        acting = attempt.acting
        for who in (acting.person, acting.on_behalf_of):
            if who is None:
                continue
            suffix = "" if who == acting.person else f" (delegated by {who})"
            if who == spec.submitter:
                return refuse_audited(
                    self.rule,
                    f"{who} submitted this release and cannot approve it{suffix} "
                    "(separation of duties)",
                )
            if who in authors:
                items = ", ".join(authors[who])
                return refuse_audited(
                    self.rule,
                    f"{who} authored evidence {items} that {attempt.stage} covers and cannot "
                    f"approve it{suffix} (separation of duties)",
                )
        return None

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        if person == scope.submitter:
            return True
        return scope.spec is not None and person in covered_authors(gate, scope.spec)

"""What a rule about deciding at a gate is, and what it is asked.

Each rule (role held, quorum, separation of duties, distinct approvers across gates, delegation,
approval expiry, signatures) is one object, a :class:`GateRule`, asked three questions by three
users:

* **May this person decide now?** :meth:`GateRule.refusal` of an :class:`Attempt`: authorisation
  (:func:`gatekeeper.rules.authorize_decision`) raises the first refusal any rule gives.
* **Could this person be eligible?** The same :meth:`GateRule.refusal`, of the approval the person
  would make in a role they hold: who a gate awaits (:func:`gatekeeper.rules.eligible_people`)
  is exactly the roster people every rule lets approve, so eligible implies authorised.
* **Can the policy or spec ever be satisfied?** :meth:`GateRule.sets_aside` (a person who can
  never fill a place of the gate, with what is known before a release runs, a :class:`Scope`)
  and :meth:`GateRule.pools_gates` (every gate's places filled by different people), used by
  :mod:`gatekeeper.rules.feasibility` with the one quorum matcher; and
  :meth:`GateRule.policy_problems` for what is not a matter of places.

A rule answers only what it is about; the base class answers "no objection" to the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings, Policy
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import Decision, GateState, ReleaseStatus
from gatekeeper.rules.refusals import Refusal, Rule

#: Problems found in a policy: each the field path it concerns (as ``gatekeeper.yamlfile``
#: locates them; not imported, so the decision logic the workflow runs does not load YAML) and a
#: sentence.
Findings = list[tuple[tuple[str | int, ...], str]]


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


def decider_ids(decision: Decision) -> set[str]:
    """Everyone a recorded decision speaks for: who made it and on whose behalf."""
    return {decision.person, decision.on_behalf_of or decision.person}


@dataclass(frozen=True)
class Attempt:
    """A decision someone tries to make (or, for who is awaited, could make) at an open gate."""

    policy: Policy
    status: ReleaseStatus
    settings: GateSettings
    gate: GateState
    kind: DecisionKind
    acting: Acting

    @property
    def stage(self) -> str:
        return self.gate.stage

    @property
    def spec(self) -> ReleaseSpec:
        return self.status.spec


@dataclass(frozen=True)
class Scope:
    """What is known when asking whether a quorum can ever be met.

    At policy load: the policy alone, or the policy with one of its release managers as the
    submitter to be. At spec check (``release start``): the spec too, so its submitter and its
    evidence authors.
    """

    policy: Policy
    submitter: str | None = None
    spec: ReleaseSpec | None = None

    @classmethod
    def of_spec(cls, policy: Policy, spec: ReleaseSpec) -> Scope:
        return cls(policy=policy, submitter=spec.submitter, spec=spec)


class GateRule:
    """One rule about who may decide at a gate. Subclasses override what they are about."""

    #: The rule its refusals name (the error ``type`` the caller sees); None if it refuses none.
    rule: Rule | None = None

    def refusal(self, attempt: Attempt) -> Refusal | None:
        """Why this rule refuses ``attempt`` now (an audited refusal), or None if it allows it."""
        del attempt
        return None

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        """Whether ``person`` can never fill a place of ``gate`` in a release under ``scope``."""
        del scope, gate, person
        return False

    def pools_gates(self, policy: Policy) -> bool:
        """Whether every gate's places must be filled by different people, all at once."""
        del policy
        return False

    def policy_problems(self, policy: Policy) -> Findings:
        """Problems of the policy this rule finds that are not about filling places."""
        del policy
        return []

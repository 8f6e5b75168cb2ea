"""Distinct approvers across gates: a policy may need different people at every gate."""

from __future__ import annotations

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import Policy
from gatekeeper.rules.base import Attempt, GateRule, decider_ids
from gatekeeper.rules.refusals import Refusal, Rule, refuse_audited


class DistinctApprovers(GateRule):
    """With ``distinct_approvers_across_gates``, nobody who approved one gate (in person or
    through a delegate) approves another. For feasibility, every gate's places are then one
    quorum, filled by different people all at once."""

    rule = Rule.DISTINCT_APPROVERS

    def refusal(self, attempt: Attempt) -> Refusal | None:
        if attempt.kind is not DecisionKind.APPROVE:
            return None
        if not attempt.policy.distinct_approvers_across_gates:
            return None
        for other_id, other in attempt.status.gates.items():
            if other_id == attempt.stage:
                continue
            for previous in other.valid_approvals():
                if decider_ids(previous) & attempt.acting.identities:
                    return refuse_audited(
                        self.rule,
                        f"{attempt.acting.principal} already approved {other_id}; this policy "
                        "needs different approvers at each gate",
                    )
        return None

    def pools_gates(self, policy: Policy) -> bool:
        return policy.distinct_approvers_across_gates

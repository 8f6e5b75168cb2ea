"""Each gate rule, asked its three questions: may this person decide now, are they awaited, can
the policy or spec ever be satisfied."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import Decision, Delegation, GateState, ReleaseStatus
from gatekeeper.policy import check_policy
from gatekeeper.rules import (
    APPROVAL_EXPIRY,
    SIGNATURES,
    Acting,
    Refusal,
    Rule,
    Scope,
    authorize_decision,
    awaited_at_gate,
    feasibility,
    resolve_acting,
)
from gatekeeper.spec import check_spec_against_policy
from tests.rules.world import (
    MANAGER,
    NOW,
    approval,
    gate,
    person,
    policy,
    req,
    spec,
    status,
)

ROSTER = [
    person("rita", MANAGER),
    person("sam", "safety"),
    person("sue", "safety"),
    person("sec", "security"),
    person("ada", "safety"),
]
GATES = [gate("review", req("safety"), req("security")), gate("final", req("safety"))]


def at_final(review: list[Decision], final: list[Decision], **changes: object) -> ReleaseStatus:
    """A release past ``review`` (with those decisions), open at ``final``."""
    the_policy = policy(ROSTER, GATES, **changes)
    return status(
        the_policy,
        spec("rita", {"card": ["ada"]}),
        {
            "review": GateState(stage="review", opened_at=NOW, closed_at=NOW, decisions=review),
            "final": GateState(stage="final", opened_at=NOW, decisions=final),
        },
    )


def refusal(
    release: ReleaseStatus,
    the_policy: Policy,
    acting: Acting,
    kind: DecisionKind = DecisionKind.APPROVE,
) -> Refusal:
    with pytest.raises(Refusal) as err:
        authorize_decision(
            policy=the_policy,
            status=release,
            gate_settings=GATES[1],
            gate=release.gates["final"],
            kind=kind,
            acting=acting,
        )
    return err.value


class TestDistinctApprovers:
    """Under distinct approvers, an approver of one gate is neither allowed nor awaited at the
    next (the drift this package fixes: they used to be awaited, then refused)."""

    def test_an_earlier_approver_is_refused_and_not_awaited(self) -> None:
        the_policy = policy(ROSTER, GATES, distinct_approvers_across_gates=True)
        release = at_final([approval("sam", "safety"), approval("sec", "security")], [])
        err = refusal(release, the_policy, Acting("sam", "safety"))
        assert err.rule is Rule.DISTINCT_APPROVERS and "already approved review" in err.message
        awaited = awaited_at_gate(the_policy, release, GATES[1], release.gates["final"])
        assert awaited.people == ["sue"], "sam approved review; ada wrote covered evidence"
        assert awaited.roles == ["safety"]

    def test_without_the_rule_the_earlier_approver_is_awaited(self) -> None:
        the_policy = policy(ROSTER, GATES)
        release = at_final([approval("sam", "safety")], [])
        awaited = awaited_at_gate(the_policy, release, GATES[1], release.gates["final"])
        assert awaited.people == ["sam", "sue"]

    def test_a_gate_nobody_left_may_approve_awaits_nobody(self) -> None:
        the_policy = policy(ROSTER, GATES, distinct_approvers_across_gates=True)
        release = at_final([approval("sam", "safety"), approval("sue", "safety")], [])
        awaited = awaited_at_gate(the_policy, release, GATES[1], release.gates["final"])
        assert (awaited.people, awaited.roles, awaited.stuck) == ([], ["safety"], True)


class TestOncePerGate:
    """A person counts once per gate, and a delegate's approval speaks for them too."""

    def test_a_delegate_who_approved_for_someone_is_not_awaited_in_their_own_role(self) -> None:
        roster = [*ROSTER, person("sid", "safety", "security")]
        the_policy = policy(roster, GATES)
        release = at_final([], [approval("sid", "security", for_="sec")])
        err = refusal(release, the_policy, Acting("sid", "safety"))
        assert err.rule is Rule.ALREADY_DECIDED
        awaited = awaited_at_gate(the_policy, release, GATES[1], release.gates["final"])
        assert "sid" not in awaited.people and "sam" in awaited.people


class TestSeparationOfDuties:
    """Submitter and authors of covered evidence never approve, in person or by delegation."""

    def test_an_author_is_refused_and_not_awaited(self) -> None:
        the_policy = policy(ROSTER, GATES)
        release = at_final([], [])
        err = refusal(release, the_policy, Acting("ada", "safety"))
        assert err.rule is Rule.SEPARATION_OF_DUTIES and "authored evidence card" in err.message
        awaited = awaited_at_gate(the_policy, release, GATES[1], release.gates["final"])
        assert "ada" not in awaited.people

    def test_a_delegate_acting_for_the_submitter_is_refused(self) -> None:
        the_policy = policy([*ROSTER, person("rm", MANAGER, "safety")], GATES)
        release = at_final([], [])
        release.spec = spec("rm")
        err = refusal(release, the_policy, Acting("sam", "safety", on_behalf_of="rm"))
        assert err.rule is Rule.SEPARATION_OF_DUTIES and "(delegated by rm)" in err.message

    def test_a_spec_whose_authors_leave_too_few_approvers_is_refused(self) -> None:
        the_policy = policy(ROSTER, [gate("review", req("safety", count=2))])
        problems = check_spec_against_policy(spec("rita", {"card": ["sam", "ada"]}), the_policy)
        assert [p.message for p in problems] == [
            "gate 'review' (2 × safety) cannot be met: ada, sam authored evidence it covers, and "
            "authors may not approve their own evidence"
        ]


class TestRoleHeldAndDelegation:
    """A decision is made in a gate role, held on the roster or delegated by someone holding it."""

    def test_a_role_the_gate_does_not_name_is_refused(self) -> None:
        the_policy = policy([*ROSTER, person("lee", "legal")], GATES)
        err = refusal(at_final([], []), the_policy, Acting("lee", "legal"))
        assert err.rule is Rule.ROLE_NOT_NEEDED

    @pytest.mark.parametrize(
        ("until", "revoked"),
        [(NOW - timedelta(seconds=1), None), (NOW + timedelta(days=1), NOW)],
        ids=["expired", "revoked"],
    )
    def test_a_delegation_that_no_longer_stands_gives_no_role(
        self, until: datetime, revoked: datetime | None
    ) -> None:
        the_policy = policy(ROSTER, GATES)
        given = Delegation(
            by="sam", to="sec", role="safety", at=NOW, until=until, revoked_at=revoked
        )
        with pytest.raises(Refusal) as err:
            resolve_acting(the_policy, [given], "sec", "safety", NOW)
        assert err.value.rule is Rule.ROLE_NOT_HELD

    def test_a_standing_delegation_acts_for_the_delegator(self) -> None:
        the_policy = policy(ROSTER, GATES)
        given = Delegation(by="sam", to="sec", role="safety", at=NOW, until=NOW + timedelta(days=1))
        acting = resolve_acting(the_policy, [given], "sec", "safety", NOW)
        assert acting == Acting("sec", "safety", on_behalf_of="sam")


class TestExpiryAndSignatures:
    """Expired approvals stop counting; unsigned decisions are refused where signatures are due."""

    def test_an_approval_expires_at_its_ttl(self) -> None:
        settings = gate("final", req("safety")).model_copy(
            update={"approval_ttl": timedelta(hours=1)}
        )
        old = approval("sam", "safety")
        state = GateState(stage="final", opened_at=NOW, decisions=[old])
        assert APPROVAL_EXPIRY.next_expiry(state, settings) == NOW + timedelta(hours=1)
        assert not APPROVAL_EXPIRY.expired(old, settings, NOW + timedelta(minutes=59))
        assert APPROVAL_EXPIRY.expired(old, settings, NOW + timedelta(hours=1))
        assert APPROVAL_EXPIRY.reason(settings) == "expired: older than 1h while the gate was open"

    def test_signatures_required_refuses_the_unsigned_and_wants_keys(self) -> None:
        the_policy = policy(ROSTER, GATES, require_signed_decisions=True)
        refused = SIGNATURES.unsigned(the_policy, "sam", signed=False)
        assert refused is not None and refused.rule is Rule.SIGNATURE_REQUIRED
        assert not refused.audited
        assert SIGNATURES.unsigned(the_policy, "sam", signed=True) is None
        messages = [m for path, m in SIGNATURES.policy_problems(the_policy) if path[0] == "roster"]
        assert messages[0] == (
            "sam has no public_key, but the policy requires signed decisions and they can "
            "approve as safety"
        )
        assert len(messages) == 4, "rita approves nothing and needs no key"


class TestFeasibility:
    """Distinct approvers pool every gate: all must be fillable at once, by whoever submits."""

    def test_pooled_gates_must_survive_any_manager_submitting(self) -> None:
        roster = [
            person("rita", MANAGER, "safety"),
            person("sam", "safety"),
            person("sec", "security"),
        ]
        gates = [gate("review", req("safety")), gate("final", req("safety"))]
        the_policy = policy(roster, gates, distinct_approvers_across_gates=True)
        assert feasibility.can_be_met(Scope(the_policy), gates)
        assert not feasibility.can_be_met(Scope(the_policy, submitter="rita"), gates)
        messages = [p.message for p in check_policy(the_policy)]
        assert messages == [
            "cannot be met if rita submits a release: every gate needs different approvers, "
            "and a submitter never approves their own release"
        ]

    def test_a_spec_is_checked_gate_by_gate_even_when_gates_are_pooled(self) -> None:
        the_policy = policy(ROSTER, GATES, distinct_approvers_across_gates=True)
        assert check_spec_against_policy(spec("rita"), the_policy) == []
        # The pool fails (only sue is left for two safety places), each gate alone does not:
        # the workflow's start check stays what releases already started under.
        authored = spec("rita", {"card": ["sam", "ada"]})
        assert not feasibility.can_be_met(Scope.of_spec(the_policy, authored), GATES)
        assert check_spec_against_policy(authored, the_policy) == []

"""A new rule is one GateRule and one line in GATE_RULES: authorisation, who is awaited and the
policy and spec checks then all ask it, with nothing else to change."""

from __future__ import annotations

import pytest

from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.policy import GateSettings
from gatekeeper.models.status import GateState
from gatekeeper.policy import check_policy
from gatekeeper.rules import (
    Acting,
    Attempt,
    GateRule,
    Refusal,
    Rule,
    Scope,
    authorize_decision,
    awaited_at_gate,
    refuse_audited,
    registry,
)
from gatekeeper.spec import check_spec_against_policy
from tests.rules.world import MANAGER, NOW, gate, person, policy, req, spec, status


class Recused(GateRule):
    """A made-up rule: one named person has recused themselves from every gate."""

    rule = Rule.NOT_AUTHORISED

    def __init__(self, who: str) -> None:
        self.who = who

    def refusal(self, attempt: Attempt) -> Refusal | None:
        if attempt.kind is DecisionKind.APPROVE and self.who in attempt.acting.identities:
            return refuse_audited(self.rule, f"{self.who} recused themselves")
        return None

    def sets_aside(self, scope: Scope, gate: GateSettings, person: str) -> bool:
        del scope, gate
        return person == self.who


@pytest.fixture
def recused_sue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "GATE_RULES", (*registry.GATE_RULES, Recused("sue")))


ROSTER = [person("rita", MANAGER), person("sam", "safety"), person("sue", "safety")]


class TestOneRegistryLine:
    """Registered, the rule refuses, narrows who is awaited, and makes a policy infeasible."""

    @pytest.mark.usefixtures("recused_sue")
    def test_all_three_users_ask_the_new_rule(self) -> None:
        one = policy(ROSTER, [gate("review", req("safety"))])
        release = status(one, spec("rita"), {"review": GateState(stage="review", opened_at=NOW)})
        settings = one.stages[0]
        assert isinstance(settings, GateSettings)
        with pytest.raises(Refusal, match="sue recused themselves"):
            authorize_decision(
                policy=one,
                status=release,
                gate_settings=settings,
                gate=release.gates["review"],
                kind=DecisionKind.APPROVE,
                acting=Acting("sue", "safety"),
            )
        awaited = awaited_at_gate(one, release, settings, release.gates["review"])
        assert awaited.people == ["sam"]

        two = policy(ROSTER, [gate("review", req("safety", count=2))])
        assert [p.message for p in check_policy(two)] == [
            "cannot be met (2 × safety): a person counts once across the gate, and the roster "
            "has too few distinct people holding these roles"
        ]
        assert check_spec_against_policy(spec("rita"), two)

    def test_unregistered_it_is_asked_by_no_one(self) -> None:
        two = policy(ROSTER, [gate("review", req("safety", count=2))])
        assert check_policy(two) == []

"""Which decision forms the release page offers, asked of a live release through the engine's
rules (no app, no browser): the page never offers a decision the worker would refuse for want of
a role, and the console refuses a request naming what the form did not offer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.console.decisions import (
    Form,
    build_request,
    forms_for,
    gateway_actions,
    refusal,
)
from gatekeeper.errors import BadInput
from gatekeeper.models import Policy, ReleaseStatus
from gatekeeper.models.messages import DelegationRequest, OperatorRequest
from tests import factories
from tests.workflows.conftest import Harness

POLICY = factories.policy()


def actions(forms: list[Form]) -> list[str]:
    return [f.action for f in forms]


def offered(status: ReleaseStatus, person: str, policy: Policy = POLICY) -> dict[str, Form]:
    return {f.action: f for f in forms_for(policy, status, person, datetime.now(UTC))}


class TestGateForms:
    """At an open gate, approve / reject / request changes appear to exactly the people every
    gate rule lets decide, in the roles they may decide in."""

    async def test_reviewer_sees_gate_forms_in_their_role(self, harness: Harness) -> None:
        status = await harness.start()
        forms = offered(status, "sam.safety")
        assert {"approve", "reject", "request_changes"} <= set(forms)
        assert forms["approve"].roles == {"safety": None}

    async def test_submitter_operator_and_stranger_see_no_gate_form(self, harness: Harness) -> None:
        status = await harness.start()
        assert not {"approve", "reject"} & set(offered(status, factories.SUBMITTER))
        operator = offered(status, factories.OPERATOR)
        assert "approve" not in operator
        assert {"hold", "withdraw"} <= set(operator) and "resume" not in operator
        assert offered(status, "mallory") == {}

    async def test_approve_form_disappears_once_approved(self, harness: Harness) -> None:
        status = await harness.start()
        await harness.approve(status.release_id, "sam.safety", "safety")
        after = await harness.releases.status(status.release_id)
        assert "approve" not in offered(after, "sam.safety")
        assert "approve" in offered(after, "sara.safety")

    async def test_delegate_sees_the_role_lent_to_them(self, harness: Harness) -> None:
        status = await harness.start()
        until = datetime.now(UTC) + timedelta(days=2)
        await harness.releases.delegate(
            status.release_id,
            DelegationRequest(by="sara.safety", to="ed.exec", role="safety", until=until),
        )
        after = await harness.releases.status(status.release_id)
        assert offered(after, "ed.exec")["approve"].roles == {"safety": "sara.safety"}
        revoke = offered(after, "sara.safety")["revoke_delegation"]
        assert [(to, role) for to, role, _ in revoke.delegations] == [("ed.exec", "safety")]

    async def test_a_held_release_offers_no_gate_form_and_offers_resume(
        self, harness: Harness
    ) -> None:
        status = await harness.start()
        await harness.releases.operate(
            status.release_id, "hold", OperatorRequest(by=factories.OPERATOR, reason="check")
        )
        held = await harness.releases.status(status.release_id)
        assert "approve" not in offered(held, "sam.safety")
        operator = offered(held, factories.OPERATOR)
        assert "resume" in operator and "hold" not in operator

    async def test_an_ended_release_offers_nothing(self, harness: Harness) -> None:
        status = await harness.start()
        await harness.releases.operate(
            status.release_id, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="stop")
        )
        ended = await harness.until(status.release_id, lambda s: s.terminal)
        assert offered(ended, factories.OPERATOR) == {}
        assert offered(ended, "sam.safety") == {}


class TestGovernmentForms:
    """The government's responses appear to liaisons only, once the release was submitted."""

    async def test_liaison_form_after_submission(self, harness: Harness) -> None:
        status = await harness.start()
        assert "record_government_response" not in offered(status, factories.LIAISON)
        await harness.pass_internal_review(status.release_id)
        window = await harness.at_stage(status.release_id, "government_testing_window")
        form = offered(window, factories.LIAISON)["record_government_response"]
        assert "cleared" in form.kinds and "concern_resolved" not in form.kinds
        assert "record_government_response" not in offered(window, "sam.safety")


class TestConsoleRefusal:
    """A request naming a role, a delegation or an action the form did not offer is refused by
    the console before anything is sent."""

    async def test_forged_requests_are_refused(self, harness: Harness) -> None:
        status = await harness.start()
        sam = forms_for(POLICY, status, "sam.safety", datetime.now(UTC))
        stage = status.stage
        assert (
            refusal(
                sam, "approve", build_request("approve", "sam.safety", stage, {"role": "safety"})
            )
            is None
        )
        wrong_role = build_request("approve", "sam.safety", stage, {"role": "security"})
        assert refusal(sam, "approve", wrong_role) == (
            "refused: you may not decide this gate as 'security'"
        )
        assert refusal(sam, "hold", {"by": "sam.safety", "reason": "x"}) == (
            "refused: you may not hold this release now"
        )
        assert refusal(sam, "revoke_delegation", {"to": "ed.exec", "role": "safety"}) is not None

    def test_build_request_is_the_cli_body(self) -> None:
        body = build_request(
            "approve", "sam.safety", "internal_review", {"role": "safety", "comment": "ok\r\nfine"}
        )
        assert body == {
            "decider": "sam.safety",
            "role": "safety",
            "stage": "internal_review",
            "comment": "ok\nfine",
        }
        hold = build_request(
            "hold", "olga.ops", None, {"reason": "wait", "until": "2030-01-02T03:04"}
        )
        assert hold == {"by": "olga.ops", "reason": "wait", "until": "2030-01-02T03:04:00Z"}

    def test_malformed_fields_are_one_line(self) -> None:
        with pytest.raises(BadInput) as raised:
            build_request("hold", "olga.ops", None, {"reason": ""})
        assert "\n" not in str(raised.value) and "reason" in str(raised.value)
        with pytest.raises(BadInput):
            build_request(
                "delegate", "sam.safety", None, {"to": "x", "role": "safety", "until": "soon"}
            )

    def test_gateway_actions_follow_the_policy(self) -> None:
        assert gateway_actions(POLICY) == frozenset()
        assert gateway_actions(factories.policy(gateway_attestation=["approve"])) == {"approve"}
        everything = gateway_actions(factories.policy(gateway_attestation=["*"]))
        assert {"approve", "hold", "record_government_response"} <= everything

"""Bad requests are refused with a one-line reason naming the rule, and change no decision."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from gatekeeper.models import ReleaseStatus
from tests import factories
from tests import signing as test_keys
from tests.workflows.conftest import Harness

FAR_FUTURE = (datetime.now(UTC) + timedelta(days=3650)).isoformat()

#: (name, update, raw JSON payload, expected error type, text the one-line message starts with
#: (a malformed payload) or contains (a broken rule))
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "unknown person",
        "approve",
        {"decider": "mallory", "role": "safety"},
        "unknown_person",
        "not on the roster",
    ),
    (
        "role not held",
        "approve",
        {"decider": "lee.legal", "role": "safety"},
        "role_not_held",
        "does not hold role 'safety'",
    ),
    (
        "role not needed",
        "approve",
        {"decider": "eve.exec", "role": "executive"},
        "role_not_needed",
        "does not decide internal_review",
    ),
    (
        "author approval",
        "approve",
        {"decider": "ada.author", "role": "safety"},
        "separation_of_duties",
        "authored evidence capability-eval",
    ),
    (
        "wrong stage",
        "approve",
        {"decider": "sam.safety", "role": "safety", "stage": "launch_approval"},
        "wrong_stage",
        "not the current stage",
    ),
    (
        "unknown field",
        "approve",
        {"decider": "sam.safety", "role": "safety", "sneaky": True},
        "bad_input",
        "bad input for approve: unknown field 'sneaky'",
    ),
    (
        "wrong type",
        "approve",
        {"decider": 42, "role": "safety"},
        "bad_input",
        "bad input for approve: decider: expected a string, got a number",
    ),
    (
        "empty decider",
        "approve",
        {"decider": "", "role": "safety"},
        "bad_input",
        "bad input for approve: decider: must not be empty",
    ),
    (
        "missing role",
        "approve",
        {"decider": "sam.safety"},
        "bad_input",
        "bad input for approve: role: field required",
    ),
    (
        "oversized comment",
        "approve",
        {"decider": "sam.safety", "role": "safety", "comment": "x" * 5000},
        "bad_input",
        "bad input for approve: comment: at most 2000 characters",
    ),
    (
        "uppercase id",
        "approve",
        {"decider": "Sam.Safety", "role": "safety"},
        "bad_input",
        "bad input for approve: decider: must be an id",
    ),
    (
        "reject by non-reviewer",
        "reject",
        {"decider": factories.OPERATOR, "role": "operator"},
        "role_not_needed",
        "does not decide internal_review",
    ),
    (
        "amend by non-submitter",
        "amend",
        {"by": "sam.safety", "note": "hi"},
        "not_submitter",
        "only the submitter",
    ),
    (
        "empty amend",
        "amend",
        {"by": factories.SUBMITTER},
        "bad_input",
        "bad input for amend: an amend must change evidence or the artifact, or carry a note",
    ),
    (
        "amend unknown evidence",
        "amend",
        {"by": factories.SUBMITTER, "remove_evidence": ["nope"]},
        "unknown_evidence",
        "no evidence with id 'nope'",
    ),
    (
        "gov before submission",
        "record_government_response",
        {"by": factories.LIAISON, "kind": "cleared"},
        "no_government_stage",
        "not been submitted",
    ),
    (
        "gov by non-liaison",
        "record_government_response",
        {"by": "sam.safety", "kind": "cleared"},
        "role_not_held",
        "government_liaison",
    ),
    (
        "gov unknown kind",
        "record_government_response",
        {"by": factories.LIAISON, "kind": "approved"},
        "bad_input",
        "bad input for record_government_response: kind: must be one of 'cleared', ",
    ),
    (
        "gov delay without date",
        "record_government_response",
        {"by": factories.LIAISON, "kind": "delay_requested"},
        "bad_input",
        "bad input for record_government_response: delay_requested needs delay_until",
    ),
    (
        "gov malformed date",
        "record_government_response",
        {"by": factories.LIAISON, "kind": "delay_requested", "delay_until": "next tuesday"},
        "bad_input",
        "bad input for record_government_response: delay_until: expected a date and time",
    ),
    (
        "gov naive date",
        "record_government_response",
        {"by": factories.LIAISON, "kind": "delay_requested", "delay_until": "2030-01-01T00:00:00"},
        "bad_input",
        "bad input for record_government_response: delay_until: a date with a time zone is needed",
    ),
    (
        "hold by non-operator",
        "hold",
        {"by": "sam.safety", "reason": "x"},
        "role_not_held",
        "does not hold role 'operator'",
    ),
    (
        "hold without reason",
        "hold",
        {"by": factories.OPERATOR, "reason": ""},
        "bad_input",
        "bad input for hold: reason: must not be empty",
    ),
    (
        "resume when not held",
        "resume",
        {"by": factories.OPERATOR, "reason": "go"},
        "not_held",
        "is not held",
    ),
    (
        "delegate to self",
        "delegate",
        {"by": "sam.safety", "to": "sam.safety", "role": "safety", "until": FAR_FUTURE},
        "invalid_delegation",
        "themselves",
    ),
    (
        "delegate too long",
        "delegate",
        {"by": "sam.safety", "to": "sara.safety", "role": "safety", "until": FAR_FUTURE},
        "bad_date",
        "within 90d",
    ),
    (
        "delegate role not held",
        "delegate",
        {"by": "sam.safety", "to": "sara.safety", "role": "legal", "until": FAR_FUTURE},
        "role_not_held",
        "does not hold role 'legal'",
    ),
    (
        "restore unknown order",
        "restore_access",
        {"order_id": "o-1", "by": factories.OPERATOR, "reason": "lift"},
        "unknown_order",
        "does not suspend",
    ),
    (
        "no payload",
        "approve",
        {},
        "bad_input",
        "bad input for approve: decider: field required (and 1 more)",
    ),
]


def decisions(status: ReleaseStatus) -> Any:
    """Everything a refused request must leave untouched."""
    return (
        status.stage,
        status.state,
        status.spec,
        {k: [d.model_dump() for d in g.decisions] for k, g in status.gates.items()},
        status.government,
        status.holds,
        status.delegations,
        status.grants,
    )


@pytest.fixture
async def rid(harness: Harness) -> str:
    status = await harness.start(spec=factories.spec(f"r-refuse-{uuid.uuid4().hex[:10]}"))
    await harness.at_stage(status.release_id, "internal_review")
    return status.release_id


class TestRefusedRequests:
    """Each refused request: a clear error, the rule named, the decision state unchanged."""

    @pytest.mark.parametrize(
        ("name", "update", "payload", "rule", "text"), CASES, ids=[c[0] for c in CASES]
    )
    async def test_raw_json_refused(
        self,
        harness: Harness,
        rid: str,
        name: str,
        update: str,
        payload: dict[str, Any],
        rule: str,
        text: str,
    ) -> None:
        del name
        before = await harness.releases.status(rid)
        handle = harness.handle(rid)
        # An honest request: signed by the key of the person it names.
        payload = await test_keys.signed(harness.releases, rid, update, payload)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(update, payload, result_type=dict)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == rule
        assert cause.non_retryable
        if rule == "bad_input":
            assert cause.message.startswith(text), cause.message
        else:
            assert text in cause.message
        assert "\n" not in cause.message
        after = await harness.releases.status(rid)
        assert decisions(after) == decisions(before)

    async def test_audited_refusals_are_recorded_validator_refusals_are_not(
        self, harness: Harness, rid: str
    ) -> None:
        handle = harness.handle(rid)
        before = await harness.releases.status(rid)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "approve", {"decider": "mallory", "role": "safety"}, result_type=dict
            )
        assert (await harness.releases.status(rid)).audit_length == before.audit_length
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "approve",
                await test_keys.signed(
                    harness.releases, rid, "approve", {"decider": "ada.author", "role": "safety"}
                ),
                result_type=dict,
            )
        audit = await harness.releases.audit(rid)
        assert audit[-1].action == "request_refused"
        assert audit[-1].details["rule"] == "separation_of_duties"
        assert audit[-1].actor == "ada.author"

    async def test_submitter_cannot_approve(self, harness: Harness) -> None:
        spec = factories.spec(f"r-self-{uuid.uuid4().hex[:8]}", submitter="rm.reviewer")
        status = await harness.start(spec=spec)
        await harness.at_stage(status.release_id, "internal_review")
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await harness.handle(status.release_id).execute_update(
                "approve",
                await test_keys.signed(
                    harness.releases,
                    status.release_id,
                    "approve",
                    {"decider": "rm.reviewer", "role": "legal"},
                ),
                result_type=dict,
            )
        cause = err.value.cause
        assert isinstance(cause, ApplicationError)
        assert (
            cause.message
            == "rm.reviewer submitted this release and cannot approve it (separation of duties)"
        )

    async def test_duplicate_approval_is_refused(self, harness: Harness, rid: str) -> None:
        await harness.approve(rid, "sam.safety", "safety")
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await harness.handle(rid).execute_update(
                "approve", {"decider": "sam.safety", "role": "safety"}, result_type=dict
            )
        assert (
            isinstance(err.value.cause, ApplicationError)
            and err.value.cause.type == "already_decided"
        )

    async def test_person_with_two_roles_counts_once(self, harness: Harness, rid: str) -> None:
        await harness.approve(rid, "multi.role", "safety")
        with pytest.raises(WorkflowUpdateFailedError):
            await harness.handle(rid).execute_update(
                "approve", {"decider": "multi.role", "role": "security"}, result_type=dict
            )
        status = await harness.releases.status(rid)
        assert status.awaiting and "security" in status.awaiting.roles

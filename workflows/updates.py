"""The release's request updates, one table entry each: its name, its request model, who sends
it, and the decider steps that check, apply and preview it (:class:`RequestUpdate`).
``ModelReleaseWorkflow`` declares each as ``name = request_update(UPDATES["name"])``; ``amend``
(which verifies the evidence again) and ``wait_started`` are written out in the workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from gatekeeper.models.enums import DecisionKind
    from gatekeeper.models.messages import (
        AccessRestoreRequest,
        AccessSuspensionRequest,
        AuthorshipAttestation,
        DecisionRequest,
        DelegationRequest,
        DelegationRevocation,
        GovernmentResponse,
        OperatorRequest,
    )
    from gatekeeper.models.partners import PartnerApprovalRequest

from gatekeeper.ledger.deciders import (
    Deciders,
)
from workflows.requests import RequestUpdate


def decision(kind: DecisionKind, doc: str) -> RequestUpdate[DecisionRequest]:
    """A reviewer's decision at the current gate."""

    def validate(d: Deciders, req: DecisionRequest, now: datetime) -> None:
        d.review.validate_decision(kind, req, now)

    def apply(d: Deciders, req: DecisionRequest, now: datetime) -> str:
        return d.review.apply_decision(kind, req, now)

    return RequestUpdate(kind.value, DecisionRequest, doc, lambda r: r.decider, validate, apply)


_UPDATES: list[RequestUpdate[Any]] = [
    decision(DecisionKind.APPROVE, "Approve the current gate as one of its roles."),
    decision(
        DecisionKind.REJECT,
        "Reject at the current gate: the release ends, every grant it made is revoked.",
    ),
    decision(
        DecisionKind.REQUEST_CHANGES, "Ask the submitter for changes; the gate waits for an amend."
    ),
    RequestUpdate(
        "record_government_response",
        GovernmentResponse,
        "Record what the government said: cleared, delay requested, concern raised/resolved.",
        lambda r: r.by,
        lambda d, r, now: d.government.validate_government(r, now),
        lambda d, r, now: d.government.apply_government(r, now),
        kind=lambda r: r.kind.value,
    ),
    RequestUpdate(
        "hold",
        OperatorRequest,
        "Operator hold: nothing advances until resumed (or ``until`` passes).",
        lambda r: r.by,
        lambda d, r, now: d.operators.validate_operator(r, now),
        lambda d, r, now: d.operators.apply_hold(r, now),
        waits_for_launch=True,
    ),
    RequestUpdate(
        "resume",
        OperatorRequest,
        "Lift an operator (or missed-deadline) hold.",
        lambda r: r.by,
        lambda d, r, now: d.operators.validate_operator(r, now),
        lambda d, r, now: d.operators.apply_resume(r, now),
    ),
    RequestUpdate(
        "withdraw",
        OperatorRequest,
        "End the release: every grant it made is revoked and everyone is told.",
        lambda r: r.by,
        lambda d, r, now: d.operators.validate_operator(r, now),
        lambda d, r, now: d.operators.apply_withdraw(r, now),
        waits_for_launch=True,
    ),
    RequestUpdate(
        "delegate",
        DelegationRequest,
        "Lend a gate role to another roster member until a time.",
        lambda r: r.by,
        lambda d, r, now: d.delegation.validate_delegation(r, now),
        lambda d, r, now: d.delegation.apply_delegation(r, now),
    ),
    RequestUpdate(
        "revoke_delegation",
        DelegationRevocation,
        "The delegator takes back a role they lent; it stops counting at once.",
        lambda r: r.by,
        lambda d, r, now: d.delegation.validate_revocation(r, now),
        lambda d, r, now: d.delegation.apply_revocation(r, now),
    ),
    RequestUpdate(
        "attest_authorship",
        AuthorshipAttestation,
        "An author (for themselves) or a reviewer attests who wrote an evidence item.",
        lambda r: r.by,
        lambda d, r, now: d.authorship.validate_authorship(r, now),
        lambda d, r, now: d.authorship.apply_authorship(r, now),
    ),
    RequestUpdate(
        "suspend_access",
        AccessSuspensionRequest,
        "An access order suspends this release's access in a scope; the stage is kept.",
        lambda r: r.by,
        lambda d, r, now: d.suspensions.validate_suspension(r, now),
        lambda d, r, now: d.suspensions.apply_suspension(r, now),
    ),
    RequestUpdate(
        "restore_access",
        AccessRestoreRequest,
        "The order that suspended access was lifted (with the safeguards it required).",
        lambda r: r.by,
        lambda d, r, now: d.suspensions.validate_restore(r, now),
        lambda d, r, now: d.suspensions.apply_restore(r, now),
    ),
    RequestUpdate(
        "approve_partners",
        PartnerApprovalRequest,
        "The government liaison approves or denies entries of the proposed partner list.",
        lambda r: r.by,
        lambda d, r, now: d.partners.validate_partner_approval(r, now),
        lambda d, r, now: d.partners.apply_partner_approval(r, now),
    ),
]

#: Every request update but ``amend`` (and the start's ``wait_started``), by name.
UPDATES: dict[str, RequestUpdate[Any]] = {u.name: u for u in _UPDATES}

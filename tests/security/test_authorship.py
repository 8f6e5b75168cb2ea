"""Evidence authorship is attested by a signature, not the submitter's word.

Separation of duties keeps an author from approving their own evidence; the submitter declares
the authors, so a submitter who leaves the real author out would let them approve. With
``require_attested_authorship`` a gate closes only once the authorship of every item it covers
is attested by a signed ``attest_authorship``: by an author (for themselves) or by a reviewer of
the gate. Attested authors count for separation of duties; an amend that changes an item's
digest makes its attestation lapse.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, DecisionRequest
from gatekeeper.models.messages import AmendRequest, AuthorshipAttestation
from gatekeeper.models.spec import EvidenceRef
from tests import factories, signing
from tests.workflows.conftest import Harness

SUBMITTER = factories.SUBMITTER


async def started(harness: Harness) -> str:
    rid = f"r-authors-{uuid.uuid4().hex[:8]}"
    policy = factories.policy(require_attested_authorship=True)
    await harness.start(spec=factories.spec(rid), policy=policy)
    await harness.at_stage(rid, "internal_review")
    return rid


async def attest(harness: Harness, rid: str, by: str, evidence: str, *authors: str) -> str:
    result = await harness.releases.attest_authorship(
        rid, AuthorshipAttestation(by=by, evidence_id=evidence, authors=list(authors))
    )
    return result.message


async def refused(coro: Any) -> DecisionRefused:
    with pytest.raises(DecisionRefused) as err:
        await coro
    return err.value


class TestAttestedAuthorship:
    """The gate waits for attested authorship; the submitter cannot attest for others; an
    attested author cannot approve what they wrote."""

    async def test_gate_closes_only_on_attested_authorship(self, harness: Harness) -> None:
        rid = await started(harness)
        for person, role in factories.INTERNAL_REVIEW:
            await harness.approve(rid, person, role)
        status = await harness.releases.status(rid)
        assert status.stage == "internal_review", "quorum alone does not close the gate"

        # The submitter is neither an author of the system card nor a reviewer: refused.
        err = await refused(attest(harness, rid, SUBMITTER, "system-card", "nobody.at.all"))
        assert err.rule == "not_authorised"
        assert "\n" not in str(err)

        # The real author of the system card attests it; a reviewer attests the evaluation's.
        await attest(harness, rid, "sara.safety", "system-card", "sara.safety")
        assert (await harness.releases.status(rid)).stage == "internal_review"
        await attest(harness, rid, "lee.legal", "capability-eval", factories.AUTHOR)
        status = await harness.at_stage(rid, "government_testing_window")
        assert status.authorship["system-card"].authors == ["sara.safety"]
        audit = await harness.releases.audit(rid)
        attested = [e for e in audit if e.action == "authorship_attested"]
        assert [e.actor for e in attested] == ["sara.safety", "lee.legal"]
        assert all(
            e.details["attestation"]["statement"]["action"] == "attest_authorship" for e in attested
        )

    async def test_an_attested_author_cannot_approve_their_evidence(self, harness: Harness) -> None:
        rid = await started(harness)
        # The submitter did not name sam.safety as an author; sam attests his own authorship.
        await attest(harness, rid, "sam.safety", "system-card", "sam.safety")
        err = await refused(
            harness.releases.decide(
                rid, DecisionKind.APPROVE, DecisionRequest(decider="sam.safety", role="safety")
            )
        )
        assert err.rule == "separation_of_duties"
        assert "system-card" in str(err)

    async def test_an_amend_lapses_the_attestation(self, harness: Harness) -> None:
        rid = await started(harness)
        await attest(harness, rid, "sara.safety", "system-card", "sara.safety")
        await attest(harness, rid, "lee.legal", "capability-eval", factories.AUTHOR)
        status = await harness.releases.status(rid)
        card = next(e for e in status.spec.evidence if e.id == "system-card")
        new_card = EvidenceRef.model_validate(
            {**card.model_dump(mode="json"), "sha256": factories.sha("card v2"), "authors": []}
        )
        await harness.releases.amend(rid, AmendRequest(by=SUBMITTER, evidence=[new_card]))
        for person, role in factories.INTERNAL_REVIEW:
            await harness.approve(rid, person, role)
        status = await harness.releases.status(rid)
        assert status.stage == "internal_review", "the new system card's authorship is unattested"
        await attest(harness, rid, "sara.safety", "system-card", "sara.safety")
        await harness.at_stage(rid, "government_testing_window")

    async def test_an_unsigned_attestation_is_refused(self, harness: Harness) -> None:
        rid = await started(harness)
        before = await harness.releases.status(rid)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await harness.handle(rid).execute_update(
                "attest_authorship",
                {"by": "sam.safety", "evidence_id": "system-card", "authors": ["lee.legal"]},
                result_type=dict,
            )
        cause = err.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "signature_required"
        forged = await signing.signed(
            harness.releases,
            rid,
            "attest_authorship",
            {"by": "sam.safety", "evidence_id": "system-card", "authors": ["lee.legal"]},
            key=signing.person_key(SUBMITTER),
        )
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await harness.handle(rid).execute_update("attest_authorship", forged, result_type=dict)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "signature_wrong_signer"
        after = await harness.releases.status(rid)
        assert after.audit_length == before.audit_length and not after.authorship

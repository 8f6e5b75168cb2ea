"""The government liaison's records and the partner list the government decides, over a ledger
in memory (the stage steps around them called as the pipeline calls them)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gatekeeper.ledger.deciders import Deciders
from gatekeeper.models import GovernmentResponse, GovernmentResponseKind
from gatekeeper.models.partners import (
    EligiblePartners,
    PartnerApprovalRequest,
    PartnerCandidate,
)
from gatekeeper.models.policy import AccessGrantStage, GovernmentWindowStage
from gatekeeper.models.status import GovernmentReceipt
from gatekeeper.rules import Refusal, Rule
from gatekeeper.stages import government_submission, government_window
from tests import factories
from tests.ledger.build import T0, started

LIAISON = factories.LIAISON


def in_window() -> Deciders:
    deciders = started()
    ledger = deciders.ledger
    government_submission.record_receipt(
        ledger, GovernmentReceipt(receipt_id="rcpt-1", clearinghouse="test", received_at=T0), T0
    )
    stage = government_window.window_stage(ledger)
    assert isinstance(stage, GovernmentWindowStage)
    ledger.enter_stage(stage, T0)
    government_window.open_window(ledger, stage, T0)
    return deciders


class TestGovernment:
    """Responses are recorded once the release was submitted; concerns block the window."""

    def test_no_response_before_the_submission(self) -> None:
        deciders = started()
        with pytest.raises(Refusal) as refused:
            deciders.government.apply_government(
                GovernmentResponse(by=LIAISON, kind=GovernmentResponseKind.CLEARED), T0
            )
        assert refused.value.rule is Rule.NO_GOVERNMENT_STAGE

    def test_a_concern_blocks_the_window_until_resolved(self) -> None:
        deciders = in_window()
        ledger = deciders.ledger
        stage = government_window.window_stage(ledger)
        assert stage is not None
        deciders.government.apply_government(
            GovernmentResponse(
                by=LIAISON, kind=GovernmentResponseKind.CONCERN_RAISED, concern="bio uplift"
            ),
            T0,
        )
        end = T0 + stage.duration
        may_end, blockers = government_window.window_blockers(ledger, stage, end)
        assert not may_end and blockers == ["open concern c1: bio uplift"]
        deciders.government.apply_government(
            GovernmentResponse(by=LIAISON, kind=GovernmentResponseKind.CONCERN_RESOLVED), end
        )
        assert government_window.window_blockers(ledger, stage, end) == (True, [])

    def test_a_delay_past_the_maximum_is_refused(self) -> None:
        deciders = in_window()
        with pytest.raises(Refusal) as refused:
            deciders.government.apply_government(
                GovernmentResponse(
                    by=LIAISON,
                    kind=GovernmentResponseKind.DELAY_REQUESTED,
                    delay_until=T0 + timedelta(days=365),
                ),
                T0,
            )
        assert refused.value.rule is Rule.DELAY_TOO_LONG


class TestPartnerList:
    """The government decides each proposed partner once; the list settles when all are."""

    def test_approve_deny_and_settle(self) -> None:
        deciders = started()
        ledger = deciders.ledger
        stage = ledger.policy.stage("vetted_partner_access")
        assert isinstance(stage, AccessGrantStage)
        candidates = [
            PartnerCandidate(
                partner_id=p, tier="government_approved", jurisdiction="us", cohort="c"
            )
            for p in ("acme-labs", "brit-ai")
        ]
        ledger.enter_stage(stage, T0)
        partners = deciders.partners
        listed = partners.propose_partners(stage, EligiblePartners(candidates=candidates), T0)
        partners.apply_partner_approval(
            PartnerApprovalRequest(by=LIAISON, partners=["acme-labs"], decision="approve"), T0
        )
        assert listed.to_grant() == ["acme-labs"]
        with pytest.raises(Refusal) as refused:
            partners.apply_partner_approval(
                PartnerApprovalRequest(by=LIAISON, partners=["acme-labs"], decision="deny"), T0
            )
        assert refused.value.rule is Rule.ALREADY_DECIDED
        partners.partners_granted(stage.id, ["acme-labs"])
        partners.apply_partner_approval(
            PartnerApprovalRequest(by=LIAISON, partners=["brit-ai"], decision="deny"), T0
        )
        assert listed.undecided() == [] and listed.to_grant() == []
        partners.settle_partner_list(stage.id, T0)
        assert ledger.status.partner_lists[0].settled_at == T0

"""Amends and evidence verification: approvals that covered a change lapse, and only the
verification of the latest evidence is recorded, whatever order verifications land in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.ledger.deciders import Deciders
from gatekeeper.models import AmendRequest, EvidenceKind, EvidenceRef
from gatekeeper.models.io import EvidenceCheckResult
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import EvidenceCheck
from gatekeeper.rules import Refusal, Rule
from gatekeeper.stages import approval_gate
from tests import factories
from tests.ledger.build import T0, approve, at_gate, audit_actions, gate_settings, started


def report(content: str) -> EvidenceRef:
    return EvidenceRef(
        id="system-card",
        kind=EvidenceKind.SYSTEM_CARD,
        uri="https://evidence.example/system-card.pdf",
        sha256=factories.sha(content),
    )


def amend(deciders: Deciders, content: str, minutes: int = 1) -> tuple[str, bool]:
    return deciders.amend.apply_amend(
        AmendRequest(by=factories.SUBMITTER, evidence=[report(content)]),
        T0 + timedelta(minutes=minutes),
    )


def verified(spec: ReleaseSpec, result: str = "ok") -> EvidenceCheckResult:
    """What the verifier would answer for ``spec``'s evidence (every item ``result``)."""
    items = [("artifact", spec.artifact.uri, spec.artifact.sha256)]
    items += [(e.id, e.uri, e.sha256) for e in spec.evidence]
    return EvidenceCheckResult(
        checks=[
            EvidenceCheck(id=i, uri=u, expected=d, actual=d, result=result) for i, u, d in items
        ]
    )


class TestAmend:
    """An amend changes the evidence; the approvals that covered a changed item lapse."""

    def test_an_amend_invalidates_the_approvals_covering_the_change(self) -> None:
        deciders = at_gate(started())
        approve(deciders, "sam.safety", "safety")
        message, reverify = amend(deciders, "card v2")
        assert reverify
        assert "invalidated the approvals of sam.safety" in message
        gate = deciders.ledger.status.gates["internal_review"]
        assert gate.valid_approvals() == []

    def test_only_the_submitter_amends(self) -> None:
        deciders = at_gate(started())
        with pytest.raises(Refusal) as refused:
            deciders.amend.apply_amend(
                AmendRequest(by="sam.safety", evidence=[report("card v2")]), T0
            )
        assert refused.value.rule is Rule.NOT_SUBMITTER

    def test_a_note_alone_needs_no_new_verification(self) -> None:
        deciders = at_gate(started())
        version = deciders.ledger.evidence_version
        _, reverify = deciders.amend.apply_amend(
            AmendRequest(by=factories.SUBMITTER, note="see the appendix"), T0
        )
        assert not reverify
        assert deciders.ledger.evidence_version == version


class TestEvidenceVersions:
    """A verification counts only for the evidence version it was asked for."""

    def test_an_older_verification_landing_last_is_dropped(self) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        asked_first, spec_first = ledger.evidence_version, ledger.spec
        amend(deciders, "card v2")
        asked_second, spec_second = ledger.evidence_version, ledger.spec
        assert ledger.record_evidence_checks(verified(spec_second, "mismatch"), T0, asked_second)
        events = len(ledger.chain)
        assert not ledger.record_evidence_checks(verified(spec_first), T0, asked_first)
        assert len(ledger.chain) == events, "a dropped verification leaves no trace"
        assert {c.expected for c in ledger.status.evidence_checks} == set(
            spec_second.digests().values()
        )
        assert approval_gate.gate_blockers(ledger, "internal_review", gate_settings(ledger))

    def test_a_verification_without_a_version_is_recorded_as_before(self) -> None:
        """Releases started before versions existed record every verification as it lands."""
        deciders = at_gate(started())
        spec = deciders.ledger.spec
        amend(deciders, "card v2")
        assert deciders.ledger.record_evidence_checks(verified(spec), T0, None)
        assert audit_actions(deciders.ledger)[-1] == "evidence_verified"

    @settings(max_examples=60, deadline=None)
    @given(
        amends=st.integers(min_value=1, max_value=5),
        order=st.randoms(use_true_random=False),
    )
    def test_whatever_the_landing_order_the_latest_evidence_is_what_is_checked(
        self, amends: int, order: object
    ) -> None:
        deciders = at_gate(started())
        ledger = deciders.ledger
        asked = [(ledger.evidence_version, ledger.spec)]
        for n in range(amends):
            amend(deciders, f"card v{n + 2}", minutes=n + 1)
            asked.append((ledger.evidence_version, ledger.spec))
        landing = list(asked)
        order.shuffle(landing)  # type: ignore[attr-defined]
        recorded = [
            v for v, spec in landing if ledger.record_evidence_checks(verified(spec), T0, v)
        ]
        assert recorded == [asked[-1][0]], "only the latest version's verification is recorded"
        assert {c.expected for c in ledger.status.evidence_checks} == set(
            ledger.spec.digests().values()
        )

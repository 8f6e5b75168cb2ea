"""One status view, three renderers: the Temporal UI's details, the terminal and the dossier show
the same facts of a release, decided once in :mod:`gatekeeper.status_view` (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from gatekeeper.cli.inbox import waits_for
from gatekeeper.cli.render import status_view
from gatekeeper.cli.watch import Snapshot
from gatekeeper.dossier.document import sections
from gatekeeper.dossier.model import Dossier
from gatekeeper.models.enums import DecisionKind, ReleaseState, StageKind, StageStatus
from gatekeeper.models.status import (
    Awaiting,
    Concern,
    Decision,
    EvidenceCheck,
    GateState,
    GovernmentReceipt,
    GovernmentState,
    HoldRecord,
    ReleaseStatus,
    StageRecord,
    Suspension,
)
from gatekeeper.status_details import current_details
from gatekeeper.status_view import view
from tests import factories

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def status() -> ReleaseStatus:
    """A release at its internal review: one approval in, one lapsed, one more hold lifted."""
    return ReleaseStatus(
        release_id="r-view",
        spec=factories.spec("r-view"),
        policy_id="frontier",
        policy_version="3",
        policy_sha256="ab" * 32,
        state=ReleaseState.HELD,
        stage="internal_review",
        stages=[
            StageRecord(
                id="intake",
                kind=StageKind.APPROVAL_GATE,
                title="Intake",
                status=StageStatus.DONE,
                started_at=T0,
                ended_at=T0,
                note="approved by sam.safety",
            ),
            StageRecord(
                id="internal_review",
                kind=StageKind.APPROVAL_GATE,
                title="Internal review",
                status=StageStatus.CURRENT,
                started_at=T0,
            ),
            StageRecord(id="launch", kind=StageKind.LAUNCH, title="Launch"),
        ],
        awaiting=Awaiting(
            what="approval at internal_review",
            roles=["legal"],
            people=["lee.legal"],
            since=T0,
            until=T0 + timedelta(days=3),
        ),
        gates={
            "internal_review": GateState(
                stage="internal_review",
                opened_at=T0,
                deadline_at=T0 + timedelta(days=3),
                reminders_sent=2,
                decisions=[
                    Decision(
                        kind=DecisionKind.APPROVE,
                        person="dee.delegate",
                        role="safety",
                        on_behalf_of="sam.safety",
                        at=T0,
                    ),
                    Decision(
                        kind=DecisionKind.APPROVE,
                        person="old.approver",
                        role="legal",
                        at=T0,
                        valid=False,
                        invalidated_reason="evidence changed",
                    ),
                ],
            )
        },
        government=GovernmentState(
            receipt=GovernmentReceipt(
                receipt_id="RC-77", clearinghouse="aisi", received_at=T0, location=""
            ),
            concerns=[
                Concern(id="c1", raised_at=T0, raised_by="gov.one", text="open question"),
                Concern(
                    id="c0",
                    raised_at=T0,
                    raised_by="gov.one",
                    text="answered question",
                    resolved_at=T0,
                    resolved_by="gov.one",
                ),
            ],
        ),
        holds=[
            HoldRecord(kind="operator", by="op.one", reason="still held", at=T0),
            HoldRecord(
                kind="operator",
                by="op.one",
                reason="lifted long ago",
                at=T0,
                released_at=T0,
                released_by="op.one",
            ),
        ],
        suspensions=[
            Suspension(order_id="o-1", by="gov.one", scope="all", reason="order in force", at=T0)
        ],
        evidence_checks=[
            EvidenceCheck(
                id="system-card", uri="x", expected="e", result="mismatch", detail="digest differs"
            ),
            EvidenceCheck(id="capability-eval", uri="y", expected="e", result="ok"),
        ],
        started_at=T0,
        updated_at=T0,
        audit_head="f" * 64,
        audit_length=12,
    )


def terminal(s: ReleaseStatus) -> str:
    console = Console(width=200, record=True, force_terminal=False, color_system=None)
    console.print(status_view(s))
    return console.export_text()


class TestTheView:
    """The view decides what is current: the open gate and its valid approvals, holds and
    suspensions in force, failing evidence, progress."""

    def test_current_facts(self) -> None:
        v = view(status())

        assert v.headline == "aurora 2.0.0" and v.finished == 1
        assert v.open_gate is not None and v.open_gate.reminders_sent == 2
        assert [a.who for a in v.open_gate.approvals] == ["sam.safety"], "lapsed ones drop out"
        assert v.open_gate.approved_by("dee.delegate") and v.open_gate.approved_by("sam.safety")
        assert not v.open_gate.approved_by("old.approver")
        assert [h.reason for h in v.active_holds] == ["still held"]
        assert [h.reason for h in v.holds] == ["still held", "lifted long ago"]
        assert [(f.id, f.result) for f in v.evidence_failures] == [("system-card", "mismatch")]
        assert v.waiting is not None and v.waiting.who == ("legal", "lee.legal")
        assert v.government.involved and v.government.receipt_id == "RC-77"

    def test_closed_gate_is_not_open(self) -> None:
        s = status()
        s.gates["internal_review"].closed_at = T0
        assert view(s).open_gate is None


class TestThreeRenderersAgree:
    """Each renderer shows the open gate's approvals and clocks, the government receipt and every
    concern with its state, the hold in force (not the lifted one), the suspension and the failing
    evidence."""

    def test_details_terminal_and_dossier(self) -> None:
        s = status()
        details = current_details(s)
        shown = terminal(s)

        for text in (details, shown):
            assert "reminder(s) sent" in text and "sam.safety" in text
            assert "RC-77" in text
            assert "open question" in text and "answered question" in text
            assert "still held" in text and "lifted long ago" not in text
            assert "order in force" in text
            assert "system-card" in text and "digest differs" in text
        assert "**Government concern c0 (resolved 2026-12-01 09:30 UTC):**" in details
        assert "gate internal_review: opened 2026-12-01 09:30 UTC" in shown

        dossier = Dossier(
            exported_at=T0,
            release_id="r-view",
            workflow_id="release-r-view",
            execution="running",
            policy_sha256="ab" * 32,
            policy_check="matches",
            status=s,
            audit_head="f" * 64,
            audit=[],
        )
        by_title = {section.title: section for section in sections(dossier)}
        operations = by_title["Holds, access orders and delegations"]
        reasons = [row[2] for row in operations.tables[0].rows]
        assert reasons == ["still held", "lifted long ago"], "the dossier keeps the history"
        government = dict(by_title["Government testing"].facts)
        assert government["Receipt"].startswith("RC-77 from aisi")
        stages = by_title["Stages"].tables[0].rows
        assert [row[2] for row in stages] == ["done", "current", "pending"]

    def test_watch_and_inbox_read_the_same_view(self) -> None:
        s = status()
        snapshot = Snapshot.of(s)
        assert snapshot.awaited == ("legal", "lee.legal")
        assert snapshot == Snapshot.of(view(s))
        assert waits_for(s, "lee.legal", ["legal"]) == ["legal"]
        assert waits_for(s, "old.approver", ["legal"]) == [], "not among the people awaited"

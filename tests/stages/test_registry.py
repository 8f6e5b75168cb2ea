"""Stage kinds are modules registered by kind; the waiting period is one, checked like the rest.

Server-free: the registry, each kind's policy check and description, and the waiting period's
transitions on a ledger.
"""

from __future__ import annotations

import typing
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from gatekeeper.cli.policy import app
from gatekeeper.dossier.document import sections
from gatekeeper.dossier.model import build_dossier
from gatekeeper.errors import PolicyError
from gatekeeper.ledger.state import Ledger
from gatekeeper.models.enums import StageKind
from gatekeeper.models.installed import InstalledPolicy
from gatekeeper.models.policy import Stage, WaitingPeriodStage
from gatekeeper.models.status import HoldRecord
from gatekeeper.policy import parse_policy, policy_sha256
from gatekeeper.stages import KINDS, kind_of, leaves_when, waiting_period
from tests import factories, yaml_edits

POLICY = """\
policy_id: cooling
version: "1"
roster:
  - id: rita.rm
    name: Rita Release
    roles: [release_manager]
  - id: sam.safety
    name: Sam Safety
    roles: [safety]
stages:
  - id: review
    kind: approval_gate
    quorum:
      - role: safety
  - id: cooling_off
    kind: waiting_period
    duration: 7d
    reason: a week for the press embargo
  - id: launch
    kind: launch
"""

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def stage_models() -> set[type]:
    """The models of the ``Stage`` union a policy's ``stages`` accepts."""
    union = typing.get_args(Stage)[0]
    return set(typing.get_args(union))


class TestRegistry:
    """Every stage kind has exactly one module, and every model a policy accepts has a kind."""

    def test_every_kind_is_registered(self) -> None:
        assert set(KINDS) == set(StageKind)
        for kind, spec in KINDS.items():
            assert spec.kind is kind
            assert spec.model.model_fields["kind"].default is kind

    def test_the_policy_union_is_the_registered_models(self) -> None:
        assert stage_models() == {spec.model for spec in KINDS.values()}

    def test_a_stage_finds_its_kind(self) -> None:
        for stage in parse_policy(POLICY).policy.stages:
            assert kind_of(stage).kind is stage.kind
            assert leaves_when(stage)


class TestWaitingPeriodPolicy:
    """A waiting period needs a duration, more than zero and at most a year, reported at its line."""

    def test_a_policy_with_a_waiting_period_loads(self) -> None:
        stage = parse_policy(POLICY).policy.stages[1]
        assert isinstance(stage, WaitingPeriodStage)
        assert stage.duration == timedelta(days=7)

    @pytest.mark.parametrize(
        ("written", "message"),
        [
            ("0s", "must be longer than zero (got 0s)"),
            ("-2d", "must be longer than zero (got -2d)"),
            ("400d", "must be at most 365 days (got 400d)"),
        ],
    )
    def test_a_bad_duration_is_refused_at_its_line(self, written: str, message: str) -> None:
        text = yaml_edits.edit([("duration: 7d", f"duration: {written}")], POLICY)
        with pytest.raises(PolicyError) as caught:
            parse_policy(text, source="p.yaml")
        line = yaml_edits.line_of(text, f"duration: {written}")
        assert str(caught.value).splitlines()[-1] == (
            f"p.yaml:{line}:5: stages[1].duration: {message}"
        )

    def test_a_missing_duration_is_refused(self) -> None:
        text = yaml_edits.edit([("    duration: 7d\n", "")], POLICY)
        with pytest.raises(PolicyError, match=r"stages\[1\]"):
            parse_policy(text, source="p.yaml")

    def test_the_launch_stays_last(self) -> None:
        text = POLICY + "  - id: after\n    kind: waiting_period\n    duration: 1d\n"
        with pytest.raises(PolicyError, match="the launch stage must be the last stage"):
            parse_policy(text, source="p.yaml")

    def test_policy_show_says_when_it_ends(self, tmp_path: typing.Any) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(POLICY)
        result = CliRunner().invoke(app, ["show", str(path)])
        assert result.exit_code == 0, result.output
        assert "waiting_period" in result.output
        assert "7d pass" in result.output


def ledger_with_wait() -> tuple[Ledger, WaitingPeriodStage]:
    policy = factories.policy(
        stages=[
            *factories.policy().stages[:-1],
            WaitingPeriodStage(id="cooling_off", duration=timedelta(days=7)),
            factories.policy().stages[-1],
        ]
    )
    installed = InstalledPolicy(
        policy_id=policy.policy_id,
        version=policy.version,
        sha256=policy_sha256(policy),
        installed_by="policy.admin",
        installed_at=NOW,
        policy=policy,
    )
    ledger = Ledger(factories.spec("r-wait"), installed, NOW)
    stage = policy.stage("cooling_off")
    assert isinstance(stage, WaitingPeriodStage)
    ledger.enter_stage(stage, NOW)
    return ledger, stage


class TestWaitingPeriodTransitions:
    """The status says when the wait ends; held, it awaits an operator and still names the end."""

    def test_start_records_the_end(self) -> None:
        ledger, stage = ledger_with_wait()
        ends = waiting_period.start_wait(ledger, stage, NOW)
        assert ends == NOW + timedelta(days=7)
        awaiting = ledger.status.awaiting
        assert awaiting is not None and awaiting.until == ends and awaiting.roles == []
        assert "2026-12-08 09:00 UTC" in awaiting.what
        record = ledger.status.stage_record("cooling_off")
        assert record is not None and record.note == "waiting until 2026-12-08 09:00 UTC"
        started = ledger.chain.events[-1]
        assert (started.action, started.stage) == ("waiting_started", "cooling_off")
        assert started.details["ends_at"] == "2026-12-08 09:00 UTC"

    def test_held_it_awaits_an_operator(self) -> None:
        ledger, stage = ledger_with_wait()
        ends = waiting_period.start_wait(ledger, stage, NOW)
        ledger.status.holds.append(
            HoldRecord(kind="operator", by=factories.OPERATOR, reason="embargo", at=NOW)
        )
        later = ends + timedelta(hours=1)
        waiting_period.await_wait(ledger, stage, ends, later)
        awaiting = ledger.status.awaiting
        assert awaiting is not None and awaiting.roles == ["operator"]
        assert "(embargo)" in awaiting.what
        assert awaiting.what.endswith("the waiting period ended 2026-12-08 09:00 UTC")

    def test_end_is_audited_with_the_note(self) -> None:
        ledger, stage = ledger_with_wait()
        ends = waiting_period.start_wait(ledger, stage, NOW)
        note = waiting_period.end_wait(ledger, stage, ends, ends)
        assert note == "waited 7d (until 2026-12-08 09:00 UTC)"
        assert ledger.chain.events[-1].action == "waiting_ended"


class TestDescriptions:
    """Each kind describes itself once; ``policy show`` and the dossier both read it."""

    def test_the_dossier_policy_section_says_what_ends_each_stage(self) -> None:
        ledger, stage = ledger_with_wait()
        dossier = build_dossier(
            status=ledger.status,
            audit=ledger.chain.events,
            policy=ledger.policy,
            outbox=[],
            exported_at=NOW,
            workflow_id="release-r-wait",
            run_id=None,
            execution="running",
        )
        policy = next(s for s in sections(dossier) if s.title == "Policy")
        pipeline = policy.tables[0]
        assert pipeline.headers == ["stage", "kind", "title", "leaves when"]
        row = next(r for r in pipeline.rows if r[0] == stage.id)
        assert row[1:] == ["waiting_period", "Cooling off", waiting_period.leaves_when(stage)]
        assert [r[3] for r in pipeline.rows] == [leaves_when(s) for s in ledger.policy.stages]

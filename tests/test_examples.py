"""The shipped policies and the example release: real digests, and they pass every check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from gatekeeper.models import (
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    GovernmentWindowStage,
    NotificationEvent,
    Policy,
    StageKind,
)
from gatekeeper.policy import (
    LoadedPolicy,
    check_policy,
    load_default_policy,
    load_demo_policy,
    load_policy,
    parse_policy,
)
from gatekeeper.spec import (
    check_spec_against_policy,
    check_spec_file,
    load_spec,
    local_path,
    verify_local_evidence,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
RELEASE = EXAMPLES / "release.yaml"
PIPELINE = [
    ("internal_review", StageKind.APPROVAL_GATE),
    ("government_submission", StageKind.GOVERNMENT_SUBMISSION),
    ("government_testing_window", StageKind.GOVERNMENT_WINDOW),
    ("vetted_partner_access", StageKind.ACCESS_GRANT),
    ("launch_approval", StageKind.APPROVAL_GATE),
    ("public_launch", StageKind.LAUNCH),
]


def quorum_roles(policy: Policy) -> set[str]:
    return {
        role
        for stage in policy.stages
        if isinstance(stage, GateSettings)
        for requirement in stage.quorum
        for role in requirement.roles
    }


class TestExampleRelease:
    """examples/release.yaml pins real files by their real digests and passes every check."""

    def test_every_digest_is_the_files_real_sha256(self) -> None:
        raw = yaml.safe_load(RELEASE.read_text())
        pinned = [raw["artifact"], *raw["evidence"]]
        for item in pinned:
            data = (EXAMPLES / item["uri"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == item["sha256"], item["uri"]

    def test_every_evidence_file_is_referenced(self) -> None:
        spec = load_spec(RELEASE)
        referenced = {local_path(spec.artifact.uri)} | {local_path(e.uri) for e in spec.evidence}
        on_disk = set((EXAMPLES / "evidence").iterdir())
        assert on_disk == referenced

    def test_loads_as_a_covered_high_risk_release(self) -> None:
        spec = load_spec(RELEASE)
        assert (spec.model.name, spec.model.version) == ("aurora", "2.0.0")
        assert (spec.risk_tier.value, spec.covered_model.value) == ("high", "designated")
        kinds = {e.kind.value for e in spec.evidence}
        assert kinds == {
            "capability_evaluation",
            "safeguards_report",
            "red_team_report",
            "security_attestation",
            "system_card",
        }
        assert all(e.uri.startswith("file:///") for e in spec.evidence)
        assert spec.partner_cohorts and spec.regions

    def test_local_evidence_verifies(self) -> None:
        assert verify_local_evidence(load_spec(RELEASE)) == []

    @pytest.mark.parametrize("loader", [load_default_policy, load_demo_policy])
    def test_passes_every_check_under_the_shipped_policies(
        self, loader: Callable[[], LoadedPolicy]
    ) -> None:
        policy = loader().policy
        assert check_spec_file(RELEASE, policy) == []
        assert check_spec_against_policy(load_spec(RELEASE), policy) == []

    def test_authors_are_not_reviewers(self) -> None:
        policy = load_default_policy().policy
        approvers = {p.id for p in policy.roster if quorum_roles(policy) & set(p.roles)}
        authors = {a for e in load_spec(RELEASE).evidence for a in e.authors}
        assert authors and not authors & approvers


class TestPolicyReference:
    """docs/policy.md's worked example is a policy that passes every check."""

    def test_worked_example_loads(self) -> None:
        text = (ROOT / "docs" / "policy.md").read_text()
        example = text.split("## Worked example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
        loaded = parse_policy(example, source="docs/policy.md")
        assert loaded.label == "small-lab v3"
        assert [stage.id for stage in loaded.policy.stages][-1] == "launch"


class TestShippedPolicies:
    """The default policy is the voluntary standard; the demo is the same with clocks in seconds."""

    def test_examples_policy_is_a_relative_symlink_to_the_default(self) -> None:
        link = EXAMPLES / "policy.yaml"
        assert link.is_symlink()
        assert os.readlink(link) == "../gatekeeper/policies/default.yaml"
        assert load_policy(link).sha256 == load_default_policy().sha256

    @pytest.mark.parametrize("loader", [load_default_policy, load_demo_policy])
    def test_pass_check_policy(self, loader: Callable[[], LoadedPolicy]) -> None:
        loaded = loader()
        assert check_policy(loaded.policy) == []
        assert Path(loaded.source).parent.name == "policies"

    def test_default_is_the_voluntary_standard_pipeline(self) -> None:
        policy = load_default_policy().policy
        assert [(s.id, s.kind) for s in policy.stages] == PIPELINE
        review, _, window, partners, launch_approval, _ = policy.stages
        assert isinstance(review, ApprovalGateStage)
        assert [r.roles for r in review.quorum] == [["safety"], ["security"], ["legal"]]
        assert review.approval_ttl == timedelta(days=14)
        assert review.escalate_to == ["executive"]
        assert isinstance(window, GovernmentWindowStage)
        assert window.duration == timedelta(days=30)
        assert window.allow_early_clearance
        assert "not_designated" not in window.applies_to
        assert isinstance(partners, AccessGrantStage)
        assert partners.minimum_period == timedelta(days=14)
        assert [r.roles for r in partners.quorum] == [["security"]]
        assert isinstance(launch_approval, ApprovalGateStage)
        assert [r.roles for r in launch_approval.quorum] == [["executive"]]

    def test_default_roster_has_two_of_each_reviewer(self) -> None:
        policy = load_default_policy().policy
        for role in ("safety", "security", "legal", "executive", "operator"):
            assert len(policy.people_with_role(role)) == 2, role
        for role in ("release_manager", "government_liaison"):
            assert len(policy.people_with_role(role)) == 1, role

    @pytest.mark.parametrize("loader", [load_default_policy, load_demo_policy])
    def test_every_event_is_routed_explicitly(self, loader: Callable[[], LoadedPolicy]) -> None:
        routes = loader().policy.notifications.routes
        routed = {event for route in routes for event in route.events if event != "*"}
        assert routed == set(NotificationEvent)

    def test_demo_is_the_default_with_clocks_in_seconds(self) -> None:
        default, demo = load_default_policy().policy, load_demo_policy().policy
        assert "demo" in demo.title.lower()
        assert demo.roster == default.roster
        assert demo.cohorts == default.cohorts
        assert [(s.id, s.kind) for s in demo.stages] == PIPELINE
        window = demo.stage("government_testing_window")
        partners = demo.stage("vetted_partner_access")
        assert isinstance(window, GovernmentWindowStage)
        assert isinstance(partners, AccessGrantStage)
        assert window.duration == timedelta(seconds=20)
        assert partners.minimum_period == timedelta(seconds=5)
        for stage in demo.stages:
            if isinstance(stage, GateSettings):
                assert stage.reminder_every is None
                assert stage.escalate_after is None
                assert stage.deadline is None
                assert stage.approval_ttl is None or stage.approval_ttl <= timedelta(minutes=10)

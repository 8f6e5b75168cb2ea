"""Policies: loading, cross-field rules located by line, fingerprints, and `gatekeeper policy`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter
from typer.testing import CliRunner

from gatekeeper.cli.policy import app
from gatekeeper.errors import PolicyError
from gatekeeper.models import Policy, QuorumRequirement
from gatekeeper.models.base import Duration, format_duration
from gatekeeper.policy import (
    check_policy,
    load_default_policy,
    load_policy,
    parse_policy,
    policy_sha256,
)
from gatekeeper.rules import quorum_satisfiable
from tests import factories, yaml_edits

BASE = """\
policy_id: test-policy
version: "1"
roster:
  - id: rita.rm
    name: Rita Release
    roles: [release_manager]
  - id: sam.safety
    name: Sam Safety
    roles: [safety]
  - id: sec.one
    name: Sec One
    email: sec.one@lab.example
    roles: [security]
  - id: lee.legal
    name: Lee Legal
    roles: [legal]
  - id: eve.exec
    name: Eve Exec
    roles: [executive]
  - id: olu.ops
    name: Olu Ops
    roles: [operator]
cohorts:
  - id: gov-approved
    tiers: [government_approved]
    jurisdictions: [us]
stages:
  - id: review
    kind: approval_gate
    quorum:
      - role: safety
      - role: security
    escalate_after: 5d
    escalate_to: [executive]
    deadline: 21d
  - id: submit
    kind: government_submission
    applies_to: [requested, pending, designated]
  - id: window
    kind: government_window
    applies_to: [requested, pending, designated]
    duration: 30d
  - id: partners
    kind: access_grant
    cohorts: [gov-approved]
    minimum_period: 14d
  - id: go
    kind: approval_gate
    quorum:
      - role: executive
  - id: launch
    kind: launch
notifications:
  routes:
    - events: [gate_waiting]
      to: {concerned: true, roles: [safety]}
      channels: [outbox, hook]
"""

DESIGNATIONS = "    applies_to: [requested, pending, designated]\n"
SUBMIT = "  - id: submit\n    kind: government_submission\n" + DESIGNATIONS
WINDOW = "  - id: window\n    kind: government_window\n" + DESIGNATIONS + "    duration: 30d\n"
GO_AND_LAUNCH = (
    "  - id: go\n    kind: approval_gate\n    quorum:\n      - role: executive\n"
    "  - id: launch\n    kind: launch\n"
)
KEY_32 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def edit(edits: list[tuple[str, str]], text: str = BASE) -> str:
    return yaml_edits.edit(edits, text)


@dataclass(frozen=True)
class Case:
    id: str
    edits: list[tuple[str, str]]
    anchor: str
    path: str
    message: str


CASES = [
    Case(
        "reminder-too-frequent",
        [
            (
                "    quorum:\n      - role: safety",
                "    reminder_every: 10m\n    quorum:\n      - role: safety",
            )
        ],
        "reminder_every: 10m",
        "stages[0].reminder_every",
        "must be at least 1h (got 10m)",
    ),
    Case(
        "unknown-field-suggestion",
        [("    quorum:\n      - role: safety", "    quorom:\n      - role: safety")],
        "quorom:",
        "stages[0]",
        "unknown field 'quorom' (did you mean 'quorum'?)",
    ),
    Case(
        "wrong-type-duration",
        [("minimum_period: 14d", "minimum_period: soon")],
        "minimum_period",
        "stages[3].minimum_period",
        "must be a duration such as 30d, 12h, 1d12h or 90s (got 'soon')",
    ),
    Case(
        "wrong-type-list",
        [("roles: [legal]", "roles: legal")],
        "roles: legal",
        "roster[3].roles",
        "must be a list (got 'legal')",
    ),
    Case(
        "missing-field",
        [("    name: Lee Legal\n", "")],
        "- id: lee.legal",
        "roster[3]",
        "missing required field 'name'",
    ),
    Case(
        "bad-identifier",
        [("- id: lee.legal", "- id: Lee Legal")],
        "- id: Lee Legal",
        "roster[3].id",
        "must be an identifier",
    ),
    Case(
        "bad-enum",
        [("tiers: [government_approved]", "tiers: [gov_approved]")],
        "gov_approved",
        "cohorts[0].tiers[0]",
        "(got 'gov_approved') (did you mean 'government_approved'?)",
    ),
    Case(
        "count-below-one",
        [("      - role: executive\n", "      - role: executive\n        count: 0\n")],
        "count: 0",
        "stages[4].quorum[0].count",
        "must be at least 1 (got 0)",
    ),
    Case(
        "duplicate-key",
        [("    duration: 30d\n", "    duration: 30d\n    duration: 20d\n")],
        "duration: 20d",
        "stages[2].duration",
        "duplicate key 'duration' (first written on line",
    ),
    Case(
        "window-45d",
        [("duration: 30d", "duration: 45d")],
        "duration: 45d",
        "stages[2].duration",
        "must be at most 30 days (got 45d)",
    ),
    Case(
        "window-zero",
        [("duration: 30d", "duration: 0s")],
        "duration: 0s",
        "stages[2].duration",
        "must be longer than zero (got 0s)",
    ),
    Case(
        "window-before-submission",
        [(SUBMIT + WINDOW, WINDOW + SUBMIT)],
        "applies_to: [requested, pending, designated]\n    duration",
        "stages[1].applies_to",
        "runs for requested, pending, designated releases, but no earlier government_submission",
    ),
    Case(
        "window-wider-than-submission",
        [
            (
                "    applies_to: [requested, pending, designated]\n    duration",
                "    applies_to: [designated, not_designated]\n    duration",
            )
        ],
        "applies_to: [designated, not_designated]",
        "stages[2].applies_to",
        "runs for not_designated releases",
    ),
    Case(
        "impossible-count",
        [("      - role: security\n", "      - role: security\n        count: 2\n")],
        "count: 2",
        "stages[0].quorum[1].count",
        "needs 2 people holding security, but the roster has only 1 (sec.one)",
    ),
    Case(
        "impossible-person-counts-once",
        [
            (
                "      - role: safety\n      - role: security\n",
                "      - roles: [safety, security]\n        count: 2\n      - role: safety\n",
            )
        ],
        "quorum:\n      - roles: [safety, security]",
        "stages[0].quorum",
        "cannot be met (2 × safety or security; 1 × safety): a person counts once",
    ),
    Case(
        "unknown-role-in-quorum",
        [("      - role: security\n", "      - role: secuirty\n")],
        "role: secuirty",
        "stages[0].quorum[1].roles[0]",
        "no one on the roster holds role 'secuirty' (did you mean 'security'?)",
    ),
    Case(
        "release-manager-in-quorum",
        [("      - role: executive\n", "      - role: release_manager\n")],
        "role: release_manager",
        "stages[4].quorum[0].roles[0]",
        "release_manager can never approve",
    ),
    Case(
        "release-manager-only-approver",
        [
            ("roles: [release_manager]", "roles: [release_manager, executive]"),
            ("roles: [executive]", "roles: [operator]"),
        ],
        "quorum:\n      - role: executive",
        "stages[4].quorum",
        "cannot be met if rita.rm submits a release (1 × executive)",
    ),
    Case(
        "gate-without-quorum",
        [("    quorum:\n      - role: executive\n", "")],
        "- id: go\n",
        "stages[4].quorum",
        "an approval gate needs a quorum",
    ),
    Case(
        "escalate-to-unknown-role",
        [("escalate_to: [executive]", "escalate_to: [exec]")],
        "escalate_to",
        "stages[0].escalate_to[0]",
        "no one on the roster holds role 'exec'",
    ),
    Case(
        "escalate-after-deadline",
        [("escalate_after: 5d", "escalate_after: 30d")],
        "escalate_after",
        "stages[0].escalate_after",
        "must be shorter than the deadline (21d), or the gate never escalates (got 30d)",
    ),
    Case(
        "zero-deadline",
        [("deadline: 21d", "deadline: 0s")],
        "deadline",
        "stages[0].deadline",
        "must be longer than zero (got 0s)",
    ),
    Case(
        "unknown-cohort",
        [("cohorts: [gov-approved]", "cohorts: [gov-aproved]")],
        "cohorts: [gov-aproved]",
        "stages[3].cohorts[0]",
        "unknown cohort 'gov-aproved' (did you mean 'gov-approved'?)",
    ),
    Case(
        "access-without-cohorts",
        [
            (
                "cohorts:\n  - id: gov-approved\n    tiers: [government_approved]\n"
                "    jurisdictions: [us]\n",
                "",
            )
        ],
        "- id: partners",
        "stages[3]",
        "grants partner access, but the policy declares no cohorts",
    ),
    Case(
        "duplicate-cohort-id",
        [
            (
                "    jurisdictions: [us]\n",
                "    jurisdictions: [us]\n  - id: gov-approved\n    tiers: [invite_only]\n"
                "    jurisdictions: [gb]\n",
            )
        ],
        "- id: gov-approved\n    tiers: [invite_only]",
        "cohorts[1].id",
        "duplicate cohort id 'gov-approved' (also cohorts[0])",
    ),
    Case(
        "launch-not-last",
        [
            (
                GO_AND_LAUNCH,
                "  - id: launch\n    kind: launch\n  - id: go\n    kind: approval_gate\n"
                "    quorum:\n      - role: executive\n",
            )
        ],
        "- id: launch",
        "stages[4]",
        "the launch stage must be the last stage",
    ),
    Case(
        "two-launches",
        [(GO_AND_LAUNCH, GO_AND_LAUNCH + "  - id: launch-again\n    kind: launch\n")],
        "- id: launch-again",
        "stages[6]",
        "only one launch stage is allowed (stages[5] is one)",
    ),
    Case(
        "duplicate-stage-id",
        [("  - id: go\n", "  - id: review\n")],
        "id: review\n    kind: approval_gate\n    quorum:\n      - role: executive",
        "stages[4].id",
        "duplicate stage id 'review' (also stages[0])",
    ),
    Case(
        "duplicate-person-id",
        [("- id: olu.ops", "- id: sam.safety\n    # a second sam")],
        "- id: sam.safety\n    # a second sam",
        "roster[5].id",
        "duplicate person id 'sam.safety' (also roster[1])",
    ),
    Case(
        "route-unknown-role",
        [("roles: [safety]}", "roles: [saftey]}")],
        "saftey",
        "notifications.routes[0].to.roles[0]",
        "unknown role 'saftey' (did you mean 'safety'?)",
    ),
    Case(
        "route-unknown-person",
        [("roles: [safety]}", "people: [sam.safty]}")],
        "sam.safty",
        "notifications.routes[0].to.people[0]",
        "unknown person 'sam.safty' (did you mean 'sam.safety'?)",
    ),
    Case(
        "route-without-recipients",
        [("to: {concerned: true, roles: [safety]}", "to: {}")],
        "to: {}",
        "notifications.routes[0].to",
        "has no recipients",
    ),
    Case(
        "channel-defined-in-policy",
        [
            (
                "  routes:\n",
                "  channels:\n    - id: hook\n      type: email\n      smtp_host: smtp.evil.example\n"
                "      secret_env: SOME_WORKER_VARIABLE\n  routes:\n",
            )
        ],
        "  channels:\n    - id: hook",
        "notifications.channels",
        "channels are defined in the worker's configuration file",
    ),
    Case(
        "channel-field-in-route",
        [("      channels: [outbox, hook]\n", "      channels: [hook]\n      url: http://x/\n")],
        "      url: http://x/",
        "notifications.routes[0].url",
        "channels are defined in the worker's configuration file",
    ),
    Case(
        "bad-public-key-length",
        [("    roles: [safety]\n", "    roles: [safety]\n    public_key: bm90IGEga2V5\n")],
        "public_key",
        "roster[1].public_key",
        "must be base64 of a 32-byte Ed25519 public key (got 9 bytes)",
    ),
    Case(
        "bad-public-key-encoding",
        [("    roles: [safety]\n", "    roles: [safety]\n    public_key: not*base64\n")],
        "public_key",
        "roster[1].public_key",
        "(it is not valid base64)",
    ),
    Case(
        "signed-decisions-without-keys",
        [('version: "1"\n', 'version: "1"\nrequire_signed_decisions: true\n')],
        "- id: sam.safety",
        "roster[1]",
        "sam.safety has no public_key, but the policy requires signed decisions",
    ),
    Case(
        "bad-email",
        [("email: sec.one@lab.example", "email: sec.one")],
        "email: sec.one",
        "roster[2].email",
        "must be an e-mail address (got 'sec.one')",
    ),
    Case(
        "distinct-approvers-across-gates",
        [
            ('version: "1"\n', 'version: "1"\ndistinct_approvers_across_gates: true\n'),
            (
                "    minimum_period: 14d\n",
                "    minimum_period: 14d\n    quorum:\n      - role: security\n",
            ),
        ],
        "distinct_approvers_across_gates",
        "distinct_approvers_across_gates",
        "cannot be met: every gate needs different approvers",
    ),
]


class TestBadPolicies:
    """Every broken policy is refused with a message for people, at the offending line."""

    @pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
    def test_refused_with_path_message_and_line(self, case: Case) -> None:
        text = edit(case.edits)
        with pytest.raises(PolicyError) as caught:
            parse_policy(text, source="bad.yaml")
        found = [(p.line, p.path, p.message) for p in caught.value.problems]
        line = yaml_edits.line_of(text, case.anchor)
        assert any(
            found_line == line and path == case.path and case.message in message
            for found_line, path, message in found
        ), found
        assert all(problem.line is not None for problem in caught.value.problems)

    def test_every_problem_is_reported_at_once(self) -> None:
        text = edit(
            [
                ("duration: 30d", "duration: 45d"),
                ("cohorts: [gov-approved]", "cohorts: [nobody]"),
                ("roles: [safety]}", "roles: [saftey]}"),
            ]
        )
        with pytest.raises(PolicyError) as caught:
            parse_policy(text, source="bad.yaml")
        paths = [problem.path for problem in caught.value.problems]
        assert paths == [
            "stages[2].duration",
            "stages[3].cohorts[0]",
            "notifications.routes[0].to.roles[0]",
        ]
        assert str(caught.value).startswith("bad.yaml:")
        assert str(caught.value).endswith("(and 2 more)")

    @pytest.mark.parametrize(
        ("raw", "line", "message"),
        [
            (b"policy_id: x\ntitle: caf\xe9\n", 2, "not UTF-8 text: byte 0xe9"),
            (b"", 1, "the file is empty"),
            (b"- policy_id: x\n", 1, "the top level must be a mapping of fields, not a list"),
        ],
        ids=["non-utf8", "empty", "not-a-mapping"],
    )
    def test_unreadable_files(self, tmp_path: Path, raw: bytes, line: int, message: str) -> None:
        path = tmp_path / "policy.yaml"
        path.write_bytes(raw)
        with pytest.raises(PolicyError) as caught:
            load_policy(path)
        [problem] = caught.value.problems
        assert (problem.line, message in problem.message) == (line, True)
        assert caught.value.source == str(path)

    def test_check_policy_without_a_document_still_names_the_path(self) -> None:
        policy = parse_policy(BASE).policy
        policy.stages[2].duration = policy.stages[2].duration * 2  # type: ignore[union-attr]
        [problem] = check_policy(policy)
        assert (problem.path, problem.line) == ("stages[2].duration", None)
        assert problem.message == "must be at most 30 days (got 60d)"


class TestGoodPolicies:
    """A workable policy loads, with its source and a stable fingerprint."""

    def test_base_policy_loads(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(BASE)
        loaded = load_policy(path)
        assert loaded.policy.policy_id == "test-policy"
        assert loaded.source == str(path)
        assert loaded.label == "test-policy v1"
        assert loaded.sha256 == policy_sha256(loaded.policy)

    def test_shipped_default_policy_passes_every_check(self) -> None:
        loaded = load_default_policy()
        assert check_policy(loaded.policy) == []
        assert loaded.source.endswith("default.yaml")

    def test_sha256_is_stable_across_reserialisation(self) -> None:
        first = load_default_policy()
        dumped = first.policy.model_dump(mode="json")
        again = parse_policy(yaml.safe_dump(dumped, sort_keys=True), source="again")
        assert again.sha256 == first.sha256
        flowed = parse_policy(json.dumps(dumped, indent=1), source="as-json")
        assert flowed.sha256 == first.sha256

    def test_layout_and_comments_do_not_change_the_sha256(self) -> None:
        relaid = "# a comment\n" + BASE.replace(
            "    roles: [safety]\n", "    roles:\n      - safety\n"
        )
        assert parse_policy(relaid).sha256 == parse_policy(BASE).sha256

    def test_any_change_changes_the_sha256(self) -> None:
        changed = BASE.replace("duration: 30d", "duration: 29d")
        assert parse_policy(changed).sha256 != parse_policy(BASE).sha256

    def test_gateway_attestation_counts_only_when_set(self) -> None:
        """Left out of the recorded policy while empty (recorded policies keep their sha256);
        set, it is part of the policy and of its sha256; only release updates are named."""
        base = parse_policy(BASE)
        explicit = parse_policy(BASE + "gateway_attestation: []\n")
        allowing = parse_policy(BASE + "gateway_attestation: [approve, reject]\n")

        assert "gateway_attestation" not in base.policy.model_dump(mode="json")
        assert explicit.sha256 == base.sha256
        assert allowing.sha256 != base.sha256
        assert allowing.policy.gateway_attestation == ["approve", "reject"]
        assert allowing.policy.model_dump(mode="json")["gateway_attestation"] == [
            "approve",
            "reject",
        ]
        for bad in ("[lift]", "[apply_order]", "[approve, 'drop table']"):
            with pytest.raises(PolicyError):
                parse_policy(BASE + f"gateway_attestation: {bad}\n")

    def test_the_demo_policy_accepts_gateway_decisions(self) -> None:
        from gatekeeper.policy import load_demo_policy

        assert load_demo_policy().policy.gateway_attestation == [
            "approve",
            "reject",
            "request_changes",
        ]
        assert load_default_policy().policy.gateway_attestation == []

    def test_a_valid_public_key_is_accepted(self) -> None:
        text = BASE.replace(
            "    roles: [safety]\n", f"    roles: [safety]\n    public_key: {KEY_32}\n"
        )
        assert parse_policy(text).policy.roster[1].public_key == KEY_32


class TestQuorum:
    """A quorum is met by distinct people; a person holding several roles counts once."""

    def reqs(self, *items: tuple[list[str], int]) -> list[QuorumRequirement]:
        return [QuorumRequirement(roles=roles, count=count) for roles, count in items]

    def test_one_person_cannot_fill_two_places(self) -> None:
        people = {"ana": {"safety", "security"}}
        assert not quorum_satisfiable(self.reqs((["safety"], 1), (["security"], 1)), people)

    def test_places_are_reassigned_to_find_a_match(self) -> None:
        # Greedy would give ana the safety place and leave security empty.
        people = {"ana": {"safety", "security"}, "ben": {"safety"}}
        assert quorum_satisfiable(self.reqs((["safety"], 1), (["security"], 1)), people)

    def test_count_needs_that_many_people(self) -> None:
        people = {"ana": {"legal"}, "ben": {"legal"}}
        assert quorum_satisfiable(
            self.reqs(
                (["legal"], 2),
            ),
            people,
        )
        assert not quorum_satisfiable(
            self.reqs(
                (["legal"], 3),
            ),
            people,
        )

    def test_any_of_several_roles(self) -> None:
        people = {"ana": {"safety"}, "ben": {"legal"}, "cy": {"operator"}}
        assert quorum_satisfiable(
            self.reqs(
                (["safety", "security", "legal"], 2),
            ),
            people,
        )
        assert not quorum_satisfiable(
            self.reqs(
                (["safety", "security", "legal"], 3),
            ),
            people,
        )


class TestPolicyCommand:
    """`gatekeeper policy check` and `show`: one line per problem, exit 2; tables or JSON."""

    runner = CliRunner()

    def test_check_ok(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(BASE)
        result = self.runner.invoke(app, ["check", str(path)])
        assert result.exit_code == 0, result.output
        sha = parse_policy(BASE).sha256
        assert result.output.strip() == f"ok: test-policy v1, 6 stages, sha256 {sha}"

    def test_check_prints_every_problem_and_exits_2(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        text = edit([("duration: 30d", "duration: 45d"), ("roles: [safety]}", "roles: [x]}")])
        path.write_text(text)
        result = self.runner.invoke(app, ["check", str(path)])
        assert result.exit_code == 2
        window = yaml_edits.line_of(text, "duration: 45d")
        assert result.output.splitlines() == [
            f"{path}:{window}:5: stages[2].duration: must be at most 30 days (got 45d)",
            f"{path}:{yaml_edits.line_of(text, 'roles: [x]')}:37: notifications.routes[0].to.roles[0]: "
            "unknown role 'x'",
        ]

    def test_check_json(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(BASE.replace("duration: 30d", "duration: 45d"))
        result = self.runner.invoke(app, ["check", str(path), "--json"])
        assert result.exit_code == 2
        body = json.loads(result.output)
        assert body["ok"] is False
        assert body["problems"][0]["path"] == "stages[2].duration"
        assert body["problems"][0]["line"] == yaml_edits.line_of(BASE, "duration: 30d")
        path.write_text(BASE)
        body = json.loads(self.runner.invoke(app, ["check", str(path), "--json"]).output)
        assert body == {
            "ok": True,
            "source": str(path),
            "policy_id": "test-policy",
            "version": "1",
            "stages": 6,
            "sha256": parse_policy(BASE).sha256,
        }

    def test_check_a_missing_file(self, tmp_path: Path) -> None:
        result = self.runner.invoke(app, ["check", str(tmp_path / "nope.yaml")])
        assert result.exit_code == 2
        assert "cannot read the file" in result.output

    def test_show_default_policy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("GATEKEEPER_POLICY", raising=False)
        result = self.runner.invoke(app, ["show"])
        assert result.exit_code == 0, result.output
        for stage in ("internal_review", "government_testing_window", "public_launch"):
            assert stage in result.output
        assert load_default_policy().sha256 in result.output

    def test_show_uses_the_configured_policy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(BASE)
        monkeypatch.setenv("GATEKEEPER_POLICY", str(path))
        result = self.runner.invoke(app, ["show", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["policy"]["policy_id"] == "test-policy"

    def test_show_file_as_json(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.yaml"
        path.write_text(BASE)
        result = self.runner.invoke(app, ["show", str(path), "--json"])
        assert result.exit_code == 0, result.output
        body = json.loads(result.output)
        assert body["sha256"] == parse_policy(BASE).sha256
        assert [s["id"] for s in body["policy"]["stages"]][-1] == "launch"
        assert body["policy"]["stages"][2]["duration"] == "30d"


class TestDurationsRoundTrip:
    """An installed policy is stored as its JSON form and checked again by the worker, so every
    duration must read back exactly: whole units in the compact form, anything finer in ISO 8601."""

    @pytest.mark.parametrize(
        ("value", "written"),
        [
            (timedelta(days=30), "30d"),
            (timedelta(days=1, hours=12), "1d12h"),
            (timedelta(milliseconds=100), "PT0.1S"),
            (timedelta(seconds=1, milliseconds=500), "PT1.5S"),
        ],
    )
    def test_written_and_read_back(self, value: timedelta, written: str) -> None:
        assert format_duration(value) == written
        assert TypeAdapter(Duration).validate_python(written) == value

    def test_a_sub_second_clock_survives_the_policy_json(self) -> None:
        policy = factories.policy(window=timedelta(milliseconds=100))
        again = Policy.model_validate_json(policy.model_dump_json())
        assert again == policy

"""Release specs: structure, checks against the policy, and local evidence digests, by line."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.errors import SpecError
from gatekeeper.models import Policy
from gatekeeper.policy import load_default_policy
from gatekeeper.spec import (
    check_spec_against_policy,
    check_spec_file,
    load_checked_spec,
    load_spec,
    local_path,
    parse_spec,
    verify_local_evidence,
)
from tests import yaml_edits

MANIFEST = b'{"model": "aurora", "shards": []}\n'
EVALS = b"# Capability evaluation\n\nNothing crosses a threshold.\n"
REMOTE_SHA = "b" * 64

TEMPLATE = """\
release_id: aurora-2.0.0
model:
  name: aurora
  version: "2.0.0"
artifact:
  uri: weights/manifest.json
  sha256: {manifest}
risk_tier: high
covered_model: designated
submitter: dana.reyes
evidence:
  - id: evals
    kind: capability_evaluation
    uri: docs/evals.md
    sha256: {evals}
    authors: [jun.park]
  - id: card
    kind: system_card
    uri: https://lab.example/cards/aurora-2.md
    sha256: {remote}
partner_cohorts: [government-approved]
regions: [us]
"""
BASE = TEMPLATE.format(
    manifest=hashlib.sha256(MANIFEST).hexdigest(),
    evals=hashlib.sha256(EVALS).hexdigest(),
    remote=REMOTE_SHA,
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy().policy


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A release directory: the spec's evidence files, in the places its relative URIs name."""
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "manifest.json").write_bytes(MANIFEST)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "evals.md").write_bytes(EVALS)
    return tmp_path


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
        "unknown-field-suggestion",
        [("risk_tier: high", "risk_teir: high")],
        "risk_teir",
        "",
        "unknown field 'risk_teir' (did you mean 'risk_tier'?)",
    ),
    Case(
        "wrong-type",
        [('  version: "2.0.0"', "  version: 2.0")],
        "version: 2.0",
        "model.version",
        "must be text (got 2.0); put it in quotes",
    ),
    Case(
        "missing-field",
        [("submitter: dana.reyes\n", "")],
        "release_id",
        "",
        "missing required field 'submitter'",
    ),
    Case(
        "missing-nested-field",
        [("  uri: weights/manifest.json\n", "")],
        "artifact:",
        "artifact",
        "missing required field 'uri'",
    ),
    Case(
        "bad-digest-format",
        [(f"sha256: {REMOTE_SHA}", "sha256: ABC123")],
        "ABC123",
        "evidence[1].sha256",
        "must be a sha256 digest: 64 lower-case hexadecimal characters (got 'ABC123')",
    ),
    Case(
        "bad-risk-tier",
        [("risk_tier: high", "risk_tier: extreme")],
        "risk_tier",
        "risk_tier",
        "must be one of low, medium, high, critical (got 'extreme')",
    ),
    Case(
        "bad-evidence-kind",
        [("kind: system_card", "kind: system_crad")],
        "system_crad",
        "evidence[1].kind",
        "(did you mean 'system_card'?)",
    ),
    Case(
        "bad-release-id",
        [("release_id: aurora-2.0.0", "release_id: Aurora 2")],
        "release_id",
        "release_id",
        "must be an identifier",
    ),
    Case(
        "evidence-not-a-list",
        [
            (
                BASE[BASE.index("evidence:") : BASE.index("partner_cohorts")],
                "evidence: docs/evals.md\n",
            )
        ],
        "evidence:",
        "evidence",
        "must be a list (got 'docs/evals.md')",
    ),
    Case(
        "duplicate-key",
        [("risk_tier: high\n", "risk_tier: high\nrisk_tier: low\n")],
        "risk_tier: low",
        "risk_tier",
        "duplicate key 'risk_tier' (first written on line 8)",
    ),
    Case(
        "duplicate-evidence-id",
        [("  - id: card\n", "  - id: evals\n")],
        "id: evals\n    kind: system_card",
        "evidence[1].id",
        "'evals' appears twice",
    ),
    Case(
        "reserved-evidence-id",
        [("  - id: card\n", "  - id: artifact\n")],
        "id: artifact",
        "evidence[1].id",
        "'artifact' is reserved",
    ),
    Case(
        "submitter-not-on-roster",
        [("submitter: dana.reyes", "submitter: dana.reyez")],
        "submitter",
        "submitter",
        "'dana.reyez' is not on the policy's roster (did you mean 'dana.reyes'?)",
    ),
    Case(
        "submitter-not-release-manager",
        [("submitter: dana.reyes", "submitter: priya.natarajan")],
        "submitter",
        "submitter",
        "'priya.natarajan' does not hold the release_manager role, so cannot submit",
    ),
    Case(
        "unknown-cohort",
        [("[government-approved]", "[government-aproved]")],
        "government-aproved",
        "partner_cohorts[0]",
        "the policy declares no cohort 'government-aproved' (did you mean 'government-approved'?)",
    ),
    Case(
        "no-regions",
        [("regions: [us]", "regions: []")],
        "regions",
        "regions",
        "must name at least one region: the policy grants partner access (vetted_partner_access)",
    ),
    Case(
        "region-outside-cohorts",
        [("regions: [us]", "regions: [us, fr]")],
        "regions",
        "regions[1]",
        "region 'fr' is not a jurisdiction of any requested cohort",
    ),
    Case(
        "authors-cannot-approve",
        [("authors: [jun.park]", "authors: [priya.natarajan, samuel.okafor]")],
        "evidence:",
        "evidence",
        "gate 'internal_review' (1 × safety; 1 × security; 1 × legal) cannot be met: "
        "priya.natarajan, samuel.okafor authored evidence it covers",
    ),
    Case(
        "missing-evidence-file",
        [("uri: docs/evals.md", "uri: docs/missing.md")],
        "docs/missing.md",
        "evidence[0].uri",
        "no such file: ",
    ),
    Case(
        "artifact-is-a-directory",
        [("uri: weights/manifest.json", "uri: weights")],
        "uri: weights",
        "artifact.uri",
        "is not a file (pin a manifest file listing the contents instead)",
    ),
    Case(
        "digest-mismatch",
        [(hashlib.sha256(EVALS).hexdigest(), "c" * 64)],
        "c" * 64,
        "evidence[0].sha256",
        f"does not match evals.md (the file's sha256 is {hashlib.sha256(EVALS).hexdigest()})",
    ),
]


class TestBadSpecs:
    """Every broken spec is refused before a release starts, at the offending line."""

    @pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
    def test_refused_with_path_message_and_line(
        self, case: Case, workspace: Path, policy: Policy
    ) -> None:
        text = edit(case.edits)
        path = workspace / "release.yaml"
        path.write_text(text)
        problems = check_spec_file(path, policy)
        found = [(p.line, p.path, p.message) for p in problems]
        line = yaml_edits.line_of(text, case.anchor)
        assert any(
            found_line == line and found_path == case.path and case.message in message
            for found_line, found_path, message in found
        ), found
        assert all(problem.line is not None for problem in problems)
        with pytest.raises(SpecError) as caught:
            load_checked_spec(path, policy)
        assert caught.value.problems == problems
        assert caught.value.source == str(path)

    @pytest.mark.parametrize(
        ("raw", "line", "message"),
        [
            (b"release_id: r\ndescription: na\xefve\n", 2, "not UTF-8 text: byte 0xef"),
            (b"", 1, "the file is empty"),
            (b"release_id\n", 1, "the top level must be a mapping of fields"),
            (b"release_id: [r\n", 2, "invalid YAML"),
        ],
        ids=["non-utf8", "empty", "not-a-mapping", "syntax"],
    )
    def test_unreadable_files(self, tmp_path: Path, raw: bytes, line: int, message: str) -> None:
        path = tmp_path / "release.yaml"
        path.write_bytes(raw)
        with pytest.raises(SpecError) as caught:
            load_spec(path)
        [problem] = caught.value.problems
        assert problem.line == line
        assert message in problem.message

    def test_a_uri_too_long_once_resolved_is_refused(self, tmp_path: Path) -> None:
        deep = tmp_path / ("d" * 60)
        deep.mkdir()
        text = BASE.replace("uri: docs/evals.md", "uri: " + "e" * 130 + ".md")
        with pytest.raises(SpecError) as caught:
            parse_spec(text, source="s.yaml", base_dir=deep)
        [problem] = caught.value.problems
        assert (problem.path, problem.line) == (
            "evidence[0].uri",
            yaml_edits.line_of(text, "e" * 130),
        )
        assert problem.message.startswith("resolves to a URI longer than 200 characters")


class TestGoodSpecs:
    """A good spec loads with its local URIs made absolute, and passes every check."""

    def test_relative_uris_resolve_against_the_spec_directory(
        self, workspace: Path, tmp_path_factory: pytest.TempPathFactory, policy: Policy
    ) -> None:
        path = workspace / "release.yaml"
        path.write_text(BASE)
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(elsewhere)
            spec = load_checked_spec(Path("..") / workspace.name / "release.yaml", policy)
        assert spec.artifact.uri == (workspace / "weights" / "manifest.json").as_uri()
        assert spec.evidence[0].uri == (workspace / "docs" / "evals.md").as_uri()
        assert spec.evidence[1].uri == "https://lab.example/cards/aurora-2.md"
        assert check_spec_file(path, policy) == []

    def test_absolute_paths_and_spaces_become_file_uris(self, tmp_path: Path) -> None:
        folder = tmp_path / "release notes"
        folder.mkdir()
        (folder / "evals v2.md").write_bytes(EVALS)
        text = BASE.replace("uri: docs/evals.md", f"uri: {folder / 'evals v2.md'}")
        spec = parse_spec(text, base_dir=tmp_path)
        assert "%20" in spec.evidence[0].uri
        assert local_path(spec.evidence[0].uri) == folder / "evals v2.md"
        assert verify_local_evidence(spec)[1:] == []  # only the absent manifest is reported

    def test_remote_evidence_is_left_to_the_running_release(self, workspace: Path) -> None:
        spec = parse_spec(BASE, base_dir=workspace)
        assert verify_local_evidence(spec) == []
        assert local_path("https://lab.example/x.md") is None
        assert local_path("s3://bucket/x") is None

    def test_problems_without_a_document_name_the_field(self, workspace: Path) -> None:
        spec = parse_spec(BASE.replace("regions: [us]", "regions: []"), base_dir=workspace)
        [problem] = check_spec_against_policy(spec, load_default_policy().policy)
        assert (problem.path, problem.line) == ("regions", None)

    def test_a_model_not_designated_skips_government_stages(
        self, workspace: Path, policy: Policy
    ) -> None:
        text = BASE.replace("covered_model: designated", "covered_model: not_designated")
        spec = parse_spec(text, base_dir=workspace)
        assert check_spec_against_policy(spec, policy) == []

    def test_authors_outside_the_roster_are_allowed(self, workspace: Path, policy: Policy) -> None:
        text = BASE.replace("authors: [jun.park]", "authors: [someone.external, jun.park]")
        assert check_spec_against_policy(parse_spec(text, base_dir=workspace), policy) == []

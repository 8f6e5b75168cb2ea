"""Bad requests through the real CLI: a one-line reason, a non-zero exit, no decision changed.

Each case names its category; the closing note counts them. Releases are prepared in the states
the cases need (under review, held, in the government window, rejected) on one worker.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from gatekeeper.models import DecisionKind, OperatorRequest
from tests import factories
from tests.refusals.conftest import Run, decision_state
from tests.workflows.conftest import Harness

R, H, W, X = "{review}", "{held}", "{window}", "{rejected}"

#: (category, argv with placeholders, expected exit code, expected text in the error line)
CASES: list[tuple[str, list[str], int, str]] = [
    (
        "unknown person",
        ["review", "approve", R, "--as", "mallory", "--role", "safety"],
        7,
        "unknown person 'mallory'",
    ),
    (
        "unknown person",
        ["gov", "respond", W, "--as", "mallory", "--cleared"],
        7,
        "unknown person 'mallory'",
    ),
    (
        "unknown person",
        ["ops", "hold", R, "--as", "mallory", "--reason", "x"],
        7,
        "unknown person 'mallory'",
    ),
    (
        "role not held",
        ["review", "approve", R, "--as", "lee.legal", "--role", "safety"],
        7,
        "does not hold role 'safety'",
    ),
    (
        "role not held",
        ["review", "reject", R, "--as", "olga.ops", "--role", "safety"],
        7,
        "does not hold role 'safety'",
    ),
    (
        "role not held",
        ["gov", "respond", W, "--as", "sam.safety", "--cleared"],
        7,
        "does not hold role 'government_liaison'",
    ),
    (
        "role not held",
        ["ops", "withdraw", R, "--as", "sam.safety", "--reason", "x"],
        7,
        "does not hold role 'operator'",
    ),
    (
        "role not held",
        ["review", "approve", R, "--as", "eve.exec", "--role", "executive"],
        7,
        "does not decide internal_review",
    ),
    (
        "self-approval",
        ["review", "approve", R, "--as", "rita.manager", "--role", "release_manager"],
        7,
        "does not decide",
    ),
    (
        "self-approval",
        ["review", "approve", R, "--as", "ada.author", "--role", "safety"],
        7,
        "separation of duties",
    ),
    (
        "wrong stage",
        [
            "review",
            "approve",
            R,
            "--as",
            "sam.safety",
            "--role",
            "safety",
            "--stage",
            "launch_approval",
        ],
        7,
        "not the current stage",
    ),
    (
        "wrong stage",
        ["review", "approve", W, "--as", "sec.two", "--role", "security"],
        7,
        "takes no decisions now",
    ),
    (
        "wrong stage",
        ["gov", "respond", R, "--as", "gus.liaison", "--cleared"],
        7,
        "not been submitted",
    ),
    (
        "duplicate decision",
        ["review", "approve", R, "--as", "sam.safety", "--role", "safety"],
        7,
        "already approved internal_review",
    ),
    (
        "duplicate decision",
        ["gov", "respond", W, "--as", "gus.liaison", "--resolve-concern", "c9"],
        7,
        "no open concern 'c9'",
    ),
    (
        "held release",
        ["review", "approve", H, "--as", "sec.one", "--role", "security"],
        7,
        "is held",
    ),
    (
        "held release",
        ["ops", "hold", H, "--as", "olga.ops", "--reason", "again"],
        7,
        "already held",
    ),
    ("held release", ["ops", "resume", R, "--as", "olga.ops", "--reason", "go"], 7, "is not held"),
    (
        "terminal release",
        ["review", "approve", X, "--as", "sam.safety", "--role", "safety"],
        7,
        "accepts no further decisions",
    ),
    (
        "terminal release",
        ["ops", "withdraw", X, "--as", "olga.ops", "--reason", "x"],
        7,
        "accepts no further decisions",
    ),
    (
        "terminal release",
        ["release", "amend", X, "--as", "rita.manager", "--note", "late"],
        7,
        "accepts no further decisions",
    ),
    (
        "malformed date",
        ["gov", "respond", W, "--as", "gus.liaison", "--delay-until", "next tuesday"],
        2,
        "is not a date",
    ),
    (
        "malformed date",
        ["ops", "hold", R, "--as", "olga.ops", "--reason", "x", "--until", "2026-13-45"],
        2,
        "is not a date",
    ),
    (
        "malformed date",
        [
            "review",
            "delegate",
            R,
            "--as",
            "sam.safety",
            "--to",
            "sara.safety",
            "--role",
            "safety",
            "--until",
            "soon",
        ],
        2,
        "is not a date",
    ),
    (
        "malformed date",
        ["gov", "respond", W, "--as", "gus.liaison", "--delay-until", "2020-01-01"],
        7,
        "not in the future",
    ),
    (
        "malformed date",
        ["ops", "hold", R, "--as", "olga.ops", "--reason", "x", "--until", "2020-01-01"],
        7,
        "not in the future",
    ),
    (
        "delay past maximum",
        ["gov", "respond", W, "--as", "gus.liaison", "--delay-until", "+90d"],
        7,
        "past the policy's maximum",
    ),
    (
        "delay past maximum",
        [
            "review",
            "delegate",
            R,
            "--as",
            "sam.safety",
            "--to",
            "sara.safety",
            "--role",
            "safety",
            "--until",
            "+200d",
        ],
        7,
        "within 90d",
    ),
    (
        "oversized comment",
        ["review", "approve", R, "--as", "sec.one", "--role", "security", "--comment", "x" * 5000],
        2,
        "bad input for approve: comment: at most 2000 characters",
    ),
    (
        "oversized comment",
        ["ops", "hold", R, "--as", "olga.ops", "--reason", "y" * 5000],
        2,
        "bad input for hold: reason: at most 2000 characters",
    ),
    (
        "empty strings",
        ["review", "approve", R, "--as", "", "--role", "safety"],
        2,
        "bad input for approve: decider: must not be empty",
    ),
    (
        "empty strings",
        ["ops", "hold", R, "--as", "olga.ops", "--reason", ""],
        2,
        "bad input for hold: reason: must not be empty",
    ),
    (
        "empty strings",
        ["gov", "respond", W, "--as", "gus.liaison", "--concern", ""],
        2,
        "exactly one",
    ),
    (
        "wrong types",
        ["review", "approve", R, "--as", "Sam.Safety", "--role", "safety"],
        2,
        "bad input for approve: decider: must be an id",
    ),
    ("wrong types", ["release", "list", "--limit", "lots"], 2, "--limit"),
    ("wrong types", ["keys", "generate", "--as", "Not An Id"], 2, "not a principal id"),
    (
        "unknown fields",
        ["review", "approve", R, "--as", "sam.safety", "--role", "safety", "--sneaky", "1"],
        2,
        "--sneaky",
    ),
    (
        "unknown fields",
        ["gov", "respond", W, "--as", "gus.liaison", "--cleared", "--concern", "both"],
        2,
        "exactly one",
    ),
    (
        "unknown fields",
        ["release", "amend", R, "--as", "rita.manager", "--evidence", "nope=/etc/hostname"],
        2,
        "has no evidence 'nope'",
    ),
    (
        "unknown fields",
        ["release", "amend", R, "--as", "rita.manager", "--new-evidence", "weird:x=/etc/hostname"],
        2,
        "weird",
    ),
    (
        "bad digest",
        ["release", "amend", R, "--as", "rita.manager", "--artifact", "https://a.example/w@zzz"],
        2,
        "not a sha256",
    ),
    (
        "not the submitter",
        ["release", "amend", R, "--as", "sam.safety", "--note", "mine now"],
        7,
        "only the submitter",
    ),
    (
        "nothing to amend",
        ["release", "amend", R, "--as", "rita.manager"],
        2,
        "must change evidence",
    ),
    (
        "unknown release",
        ["release", "status", "no-such-release"],
        5,
        "no release 'no-such-release'",
    ),
    (
        "unknown release",
        ["review", "approve", "no-such-release", "--as", "sam.safety", "--role", "safety"],
        5,
        "no release",
    ),
    (
        "delegation",
        [
            "review",
            "delegate",
            R,
            "--as",
            "sam.safety",
            "--to",
            "sam.safety",
            "--role",
            "safety",
            "--until",
            "+1d",
        ],
        7,
        "themselves",
    ),
]


@pytest.fixture
async def releases(harness: Harness) -> dict[str, str]:
    """One release in each state the cases need."""
    ids: dict[str, str] = {}
    for name in ("review", "held", "window", "rejected"):
        rid = f"r-cli-{name}-{uuid.uuid4().hex[:6]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        ids[name] = rid
    await harness.approve(ids["review"], "sam.safety", "safety")
    await harness.releases.operate(
        ids["held"], "hold", OperatorRequest(by=factories.OPERATOR, reason="incident")
    )
    await harness.pass_internal_review(ids["window"])
    await harness.at_stage(ids["window"], "government_testing_window")
    await harness.releases.decide(
        ids["rejected"], DecisionKind.REJECT, factories.decision("lee.legal", "legal")
    )
    await harness.handle(ids["rejected"]).result()
    return ids


class TestCliRefusals:
    """Every refused request through the CLI: one line, non-zero exit, decisions unchanged."""

    def test_case_count(self) -> None:
        categories = Counter(category for category, *_ in CASES)
        assert len(CASES) >= 40
        assert len(categories) >= 15

    async def test_every_case(
        self, run: Run, harness: Harness, releases: dict[str, str], subtests: pytest.Subtests
    ) -> None:
        for category, argv, code, text in CASES:
            args = [a.format(**releases) for a in argv]
            target = next((v for k, v in releases.items() if "{" + k + "}" in argv), None)
            with subtests.test(msg=f"{category}: {' '.join(args)[:90]}"):
                before = decision_state(await harness.releases.status(target)) if target else None
                outcome = await run(*args)
                assert outcome.code == code, outcome.stderr or outcome.stdout
                assert text in outcome.error_line
                if target:
                    after = decision_state(await harness.releases.status(target))
                    assert after == before, "a refused request changed the release"


class TestStartRefusals:
    """``release start`` refuses bad spec and policy files before anything starts."""

    def spec_file(self, tmp_path: Path, text: str | bytes) -> Path:
        path = tmp_path / f"spec-{uuid.uuid4().hex[:8]}.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    async def test_bad_files(
        self, run: Run, harness: Harness, tmp_path: Path, subtests: pytest.Subtests
    ) -> None:
        evidence = tmp_path / "card.md"
        evidence.write_text("system card v1\n")
        good = (
            "release_id: r-start-{id}\nmodel: {{name: aurora, version: '1'}}\n"
            "artifact: {{uri: https://a.example/w, sha256: " + "a" * 64 + "}}\n"
            "risk_tier: high\ncovered_model: designated\nsubmitter: rita.manager\n"
            "partner_cohorts: [gov-approved]\nregions: [us]\n"
            "evidence:\n  - {{id: card, kind: system_card, uri: card.md, sha256: {digest}}}\n"
        )
        import hashlib

        real = hashlib.sha256(evidence.read_bytes()).hexdigest()
        impossible = tmp_path / "impossible.yaml"
        policy = factories.policy().model_dump(mode="json")
        policy["stages"][0]["quorum"] = [{"roles": ["legal"], "count": 5}]
        import yaml

        impossible.write_text(yaml.safe_dump(policy))
        cases = [
            ("non-UTF-8 spec", self.spec_file(tmp_path, b"release_id: \xff\xfe\n"), [], "UTF-8"),
            (
                "bad digest",
                self.spec_file(tmp_path, good.format(id="1", digest="b" * 64)),
                [],
                "does not match",
            ),
            (
                "malformed digest",
                self.spec_file(tmp_path, good.format(id="2", digest="xyz")),
                [],
                "sha256",
            ),
            (
                "unknown field",
                self.spec_file(tmp_path, good.format(id="3", digest=real) + "colour: red\n"),
                [],
                "colour",
            ),
            ("empty spec", self.spec_file(tmp_path, ""), [], "empty"),
            ("missing file", tmp_path / "nope.yaml", [], "nope.yaml"),
            (
                "a policy file instead of an installed policy",
                self.spec_file(tmp_path, good.format(id="4", digest=real)),
                ["--policy", str(impossible)],
                "never a policy file or body",
            ),
            (
                "a policy that is not installed",
                self.spec_file(tmp_path, good.format(id="5", digest=real)),
                ["--policy", "test-policy@99"],
                "policy test-policy@99 is not installed",
            ),
        ]
        for name, path, extra, text in cases:
            with subtests.test(msg=name):
                outcome = await run("release", "start", str(path), *extra)
                assert outcome.code == 2, outcome.stderr
                assert text in outcome.error_line
        with subtests.test(msg="impossible quorum is refused at install"):
            outcome = await run("policy", "install", str(impossible), "--as", "pat.admin")
            assert outcome.code == 2, outcome.stderr
            assert "needs 5 people holding legal" in outcome.error_line
        spec = self.spec_file(tmp_path, good.format(id=uuid.uuid4().hex[:6], digest=real))
        first = await run("release", "start", str(spec))
        assert first.code == 0, first.stderr
        again = await run("release", "start", str(spec))
        assert again.code == 6
        assert "already exists" in again.error_line

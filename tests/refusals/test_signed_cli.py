"""Signed decisions end to end: `keys generate`, the CLI signs, the workflow verifies."""

from __future__ import annotations

import json
import uuid

import yaml

from gatekeeper import signing
from gatekeeper.models import Person
from tests import factories
from tests.refusals.conftest import Run
from tests.workflows.conftest import Harness


class TestSignedDecisionsThroughTheCli:
    """The CLI signs with the decider's key; a wrong key or no key is refused."""

    async def test_generate_sign_verify(self, run: Run, harness: Harness) -> None:
        public: dict[str, str] = {}
        for person in ("sam.safety", "sara.safety", "sec.one", "lee.legal"):
            outcome = await run("keys", "generate", "--as", person, "--json")
            assert outcome.code == 0, outcome.stderr
            public[person] = json.loads(outcome.stdout)["public_key"]
        again = await run("keys", "generate", "--as", "sam.safety")
        assert again.code == 2 and "already exists" in again.error_line

        roster = signed_roster(public)
        policy = factories.policy(roster=roster, require_signed_decisions=True)
        policy_file = run.workdir / "signed-policy.yaml"
        policy_file.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
        rid = f"r-signed-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid), policy=policy)
        await harness.at_stage(rid, "internal_review")

        outcome = await run("review", "approve", rid, "--as", "sam.safety", "--role", "safety")
        assert outcome.code == 0, outcome.stderr
        audit = await harness.releases.audit(rid)
        decision = next(e for e in audit if e.action == "decision_approve")
        assert (
            decision.details["signature"]["artifact_sha256"] == factories.spec(rid).artifact.sha256
        )

        # sec.two has no key: the CLI sends an unsigned decision and the workflow refuses it.
        unsigned = await run("review", "approve", rid, "--as", "sec.two", "--role", "security")
        assert unsigned.code == 7 and "requires signed decisions" in unsigned.error_line

        # lee.legal signs with sara.safety's key: forged.
        keys = run.workdir / "keys"
        forged = await run(
            "review",
            "approve",
            rid,
            "--as",
            "lee.legal",
            "--role",
            "legal",
            "--key",
            str(keys / "sara.safety.pem"),
        )
        assert (
            forged.code == 7
            and "does not verify against lee.legal's roster key" in forged.error_line
        )
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        assert [d.person for d in gate.valid_approvals()] == ["sam.safety"]


class TestDelegateEverywhere:
    """`review delegate` without a release id reaches every running release."""

    async def test_delegation_sent_to_each_running_release(
        self, run: Run, harness: Harness
    ) -> None:
        ids = []
        for _ in range(2):
            rid = f"r-deleg-{uuid.uuid4().hex[:8]}"
            await harness.start(spec=factories.spec(rid))
            await harness.at_stage(rid, "internal_review")
            ids.append(rid)
        outcome = await run(
            "review",
            "delegate",
            "--as",
            "lee.legal",
            "--to",
            "sec.two",
            "--role",
            "legal",
            "--until",
            "+2d",
            "--json",
        )
        assert outcome.code == 0, outcome.stderr
        results = {r["release_id"]: r["result"] for r in json.loads(outcome.stdout)}
        assert all(results[rid] == "delegated" for rid in ids)
        await harness.approve(ids[1], "sec.two", "legal")
        gate = (await harness.releases.status(ids[1])).gates["internal_review"]
        assert [(d.person, d.on_behalf_of) for d in gate.valid_approvals()] == [
            ("sec.two", "lee.legal")
        ]


class TestSignedGovernmentResponses:
    """The liaison's signed responses verify: the CLI signs the same subject the workflow checks."""

    async def test_signed_concern_and_delay(self, run: Run, harness: Harness) -> None:
        people = ("sam.safety", "sec.one", "lee.legal", factories.LIAISON)
        public = {}
        for person in people:
            outcome = await run("keys", "generate", "--as", person, "--json")
            public[person] = json.loads(outcome.stdout)["public_key"]
        roster = signed_roster(public)
        policy = factories.policy(roster=roster, require_signed_decisions=True)
        rid = f"r-signed-gov-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid), policy=policy)
        await harness.at_stage(rid, "internal_review")
        for person, role in factories.INTERNAL_REVIEW:
            outcome = await run("review", "approve", rid, "--as", person, "--role", role)
            assert outcome.code == 0, outcome.stderr
        await harness.at_stage(rid, "government_testing_window")

        concern = await run(
            "gov", "respond", rid, "--as", factories.LIAISON, "--concern", "finding 7"
        )
        assert concern.code == 0, concern.stderr
        delay = await run("gov", "respond", rid, "--as", factories.LIAISON, "--delay-until", "+35d")
        assert delay.code == 0, delay.stderr
        unsigned = await run(
            "gov",
            "respond",
            rid,
            "--as",
            factories.LIAISON,
            "--resolve-concern",
            "c1",
            "--key",
            str(run.workdir / "keys" / "sam.safety.pem"),
        )
        assert unsigned.code == 7 and "does not verify" in unsigned.error_line
        audit = await harness.releases.audit(rid)
        signed = [e for e in audit if e.action in ("concern_raised", "government_delay")]
        assert len(signed) == 2
        assert all(e.details["signature"]["value"] for e in signed), "the attestation is kept"


def signed_roster(public: dict[str, str]) -> list[Person]:
    """The test roster with the CLI-generated ``public`` keys; everyone else gets a key whose
    private half this CLI does not hold (a policy requiring signatures must give everyone who
    can decide a key, or it is not installable), so their CLI sends unsigned decisions."""
    return [
        Person.model_validate(
            {
                **p.model_dump(),
                "public_key": public.get(p.id)
                or signing.public_key_b64(signing.load_private_key(signing.generate_keypair()[0])),
            }
        )
        for p in factories.ROSTER
    ]

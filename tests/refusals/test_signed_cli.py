"""Signed decisions end to end: `keys generate`, the CLI signs, the workflow verifies."""

from __future__ import annotations

import json
import uuid

from tests import factories
from tests.refusals.conftest import Run
from tests.workflows.conftest import Harness


class TestSignedDecisionsThroughTheCli:
    """The CLI signs with the decider's key from the keys dir; no key, or someone else's key,
    is refused in one line."""

    async def test_sign_with_own_key_or_refused(self, run: Run, harness: Harness) -> None:
        rid = f"r-signed-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
        await harness.at_stage(rid, "internal_review")

        outcome = await run("review", "approve", rid, "--as", "sam.safety", "--role", "safety")
        assert outcome.code == 0, outcome.stderr
        audit = await harness.releases.audit(rid)
        decision = next(e for e in audit if e.action == "decision_approve")
        statement = decision.details["attestation"]["statement"]
        assert statement["actor"] == "sam.safety" and statement["action"] == "approve"
        assert statement["binding"]["artifact_sha256"] == factories.spec(rid).artifact.sha256

        # sec.two has no key in the keys dir: nothing is sent.
        (run.workdir / "keys" / "sec.two.pem").unlink()
        before = await harness.releases.status(rid)
        unsigned = await run("review", "approve", rid, "--as", "sec.two", "--role", "security")
        assert unsigned.code == 2
        assert "gatekeeper keys generate --as sec.two" in unsigned.error_line

        # lee.legal signs with sara.safety's key: refused by the worker.
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
        assert forged.code == 7
        assert "belongs to sara.safety, not to lee.legal" in forged.error_line
        after = await harness.releases.status(rid)
        assert after.audit_length == before.audit_length
        gate = after.gates["internal_review"]
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
        # Taken back, signed like the delegation: it stops counting at once.
        revoked = await run(
            "review",
            "delegate",
            ids[1],
            "--as",
            "lee.legal",
            "--to",
            "sec.two",
            "--role",
            "legal",
            "--revoke",
        )
        assert revoked.code == 0, revoked.stderr
        status = await harness.releases.status(ids[1])
        assert not status.gates["internal_review"].valid_approvals()
        assert status.delegations[0].revoked_at is not None


class TestSignedGovernmentResponses:
    """The liaison's responses are signed by the CLI and their statements audited; signed with
    another person's key they are refused."""

    async def test_signed_concern_and_delay(self, run: Run, harness: Harness) -> None:
        rid = f"r-signed-gov-{uuid.uuid4().hex[:8]}"
        await harness.start(spec=factories.spec(rid))
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
        forged = await run(
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
        assert forged.code == 7 and "belongs to sam.safety" in forged.error_line
        audit = await harness.releases.audit(rid)
        signed = [e for e in audit if "attestation" in e.details and e.actor == factories.LIAISON]
        assert [e.details["attestation"]["statement"]["action"] for e in signed] == [
            "record_government_response",
            "record_government_response",
        ]

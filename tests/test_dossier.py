"""The release dossier: exported after a real launch, it verifies; any altered byte is named."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.audit import event_hash
from gatekeeper.dossier import Dossier, DossierFormat, collect_dossier, render, verify_text
from gatekeeper.dossier.collect import ChainMismatch, completed_chain
from gatekeeper.dossier.verify import Checks, verify_file
from gatekeeper.errors import InputError, ReleaseNotFound
from gatekeeper.models import ReleaseOutcome, ReleaseState
from gatekeeper.models.audit import GENESIS_HASH, AuditEvent
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories
from tests import signing as test_keys
from tests.anchoring import dossier_sources, register_worker
from tests.helpers import adapters_for, running_worker
from tests.workflows.conftest import Harness


@dataclass
class Launched:
    """One release taken from start to launch, and its exported dossier."""

    release_id: str
    dossier: Dossier
    json_text: str
    data_dir: Path
    #: What ``audit verify`` checks signatures against (the test installation's trust root).
    checks: Checks


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def launched(
    env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Launched]:
    data_dir = tmp_path_factory.mktemp("dossier") / "data"
    task_queue = f"tq-dossier-{uuid.uuid4().hex[:8]}"
    adapters = adapters_for(task_queue, data_dir)
    root = register_worker(data_dir, adapters.worker_key_path, data_dir.parent / "keys")
    releases = Releases(env.client, task_queue, signer=test_keys.signer())
    # Every person's test key registered under the same root: every request is signed.
    async with running_worker(
        env.client, task_queue, adapters, admin_keys=data_dir.parent / "keys"
    ):
        # Through every stage (every request signed) to its result.
        harness = Harness(env, releases, adapters, data_dir)
        rid = (await harness.start(factories.spec(f"dossier-{uuid.uuid4().hex[:8]}"))).release_id
        await harness.at_stage(rid, "internal_review")
        await harness.launch(rid)
    adapters.close()
    # Exported with no worker running: a finished release is read from its history.
    with dossier_sources(data_dir) as sources:
        dossier = await collect_dossier(releases, rid, **sources)
    yield Launched(
        rid, dossier, render(dossier, DossierFormat.JSON), data_dir, Checks(trust_root=root)
    )


def event_line(text: str, seq: int) -> int:
    """Index (in ``text.splitlines()``) of the line holding audit event ``seq``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == '"audit": [')
    return start + 1 + seq


def replace_line(text: str, index: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    return "\n".join(lines) + "\n"


class TestExportAfterLaunch:
    """A launched release's dossier holds spec, policy and hash, signed decisions, government
    receipt, grants, notifications and the full timeline, and it verifies."""

    def test_the_dossier_verifies(self, launched: Launched) -> None:
        result = verify_text(launched.json_text, checks=launched.checks)

        assert result.ok, result.message
        assert result.events == len(launched.dossier.audit) == launched.dossier.status.audit_length
        heads = len(launched.dossier.signed_heads)
        attested = sum("attestation" in e.details for e in launched.dossier.audit)
        assert result.message.startswith(
            f"ok: {result.events} events, head {result.head}; {attested} signed request(s), "
            f"{heads} signed head(s) up to event {result.events - 1}, {heads} anchor(s) from "
        )
        assert heads == 6, "five stage ends (launch ends the release) and the release's end"
        assert result.head == launched.dossier.status.audit_head

    def test_it_carries_what_compliance_asks_for(self, launched: Launched) -> None:
        dossier = launched.dossier

        assert dossier.status.state is ReleaseState.LAUNCHED
        assert dossier.execution == "completed"
        assert dossier.policy is not None and dossier.policy_check == "matches"
        assert dossier.status.government.receipt is not None
        assert {g.partner_id for g in dossier.status.grants} == {
            "acme-labs",
            "brit-ai",
            "invited-co",
        }
        # Every decision was a signed request (its statement is in its audit event).
        checks = {(d.person, d.signature_check) for d in dossier.decisions}
        assert ("sam.safety", "signed request") in checks
        assert ("sec.one", "signed request") in checks
        assert all(d.key_id for d in dossier.decisions)
        assert [d.person for d in dossier.decisions][-1] == "eve.exec"
        events = {n.event for n in dossier.notifications}
        assert {"release_started", "gate_waiting", "window_opened", "launched"} <= events
        launched_to = {
            d.recipient
            for n in dossier.notifications
            if n.event == "launched"
            for d in n.deliveries
        }
        assert "partner:acme-labs" in launched_to, (
            "the cohort's granted partners hear of the launch"
        )
        ended = next(e.seq for e in dossier.audit if e.action == "release_launched")
        final = dossier.signed_heads[-1].head
        # Signed heads live in the anchor table, never in the chain they sign.
        assert not any(e.action == "audit_head_signed" for e in dossier.audit)
        assert (final.seq, final.reason) == (len(dossier.audit) - 1, "release launched")
        assert final.seq >= ended, "the release's end is signed"
        kinds = {k.principal_kind.value for k in dossier.keys}
        attested = any("attestation" in e.details for e in dossier.audit)
        assert kinds == {"admin", "worker"} | ({"person"} if attested else set())

    def test_markdown_and_html_are_for_people(self, launched: Launched) -> None:
        markdown = render(launched.dossier, DossierFormat.MD)
        page = render(launched.dossier, DossierFormat.HTML)

        for text in (markdown, page):
            for heading in (
                "Release spec",
                "Policy",
                "Decisions",
                "Government testing",
                "Partner access: grants and revocations",
                "Notifications sent",
                "Timeline (the audit chain)",
            ):
                assert heading in text
            assert launched.dossier.policy_sha256 in text
            assert launched.dossier.audit_head in text
        assert "| internal_review | approve | sam.safety | safety |" in markdown
        assert page.startswith("<!DOCTYPE html>") and "<script" not in page

    async def test_an_unknown_release_is_a_clear_error(self, env: WorkflowEnvironment) -> None:
        with pytest.raises(ReleaseNotFound, match="no-such-release"):
            await collect_dossier(
                Releases(env.client, "unused", signer=test_keys.signer()), "no-such-release"
            )


class TestTampering:
    """Editing any byte of one audit event makes verify fail and name exactly that event;
    a deleted event is named as the gap it leaves."""

    @pytest.mark.parametrize("where", ["first", "decision", "last"])
    def test_every_byte_of_an_event_is_covered(self, launched: Launched, where: str) -> None:
        audit = launched.dossier.audit
        seq = {
            "first": 0,
            "decision": next(e.seq for e in audit if e.action == "decision_approve"),
            "last": len(audit) - 1,
        }[where]
        index = event_line(launched.json_text, seq)
        line = launched.json_text.splitlines()[index]

        missed = []
        for position, char in enumerate(line):
            flipped = line[:position] + ("x" if char != "x" else "y") + line[position + 1 :]
            try:
                message = verify_text(replace_line(launched.json_text, index, flipped)).message
            except InputError as err:
                message = str(err)
            if not re.match(rf"altered: event #{seq}[ :]", message):
                missed.append((position, line[max(0, position - 10) : position + 10], message))

        assert missed == []

    def test_one_byte_in_details_names_the_event_with_its_action_and_time(
        self, launched: Launched
    ) -> None:
        event = next(e for e in launched.dossier.audit if e.action == "decision_approve")
        index = event_line(launched.json_text, event.seq)
        line = launched.json_text.splitlines()[index]
        at = line.index('"person":"') + len('"person":"')
        tampered = line[:at] + "X" + line[at + 1 :]

        result = verify_text(replace_line(launched.json_text, index, tampered))

        assert result.message == (
            f"altered: event #{event.seq} (decision_approve at "
            f"{event.model_dump(mode='json')['at']}): hash does not match the event's content"
        )
        assert result.bad_seq == event.seq

    def test_a_deleted_event_is_named_as_a_gap(self, launched: Launched) -> None:
        seq = len(launched.dossier.audit) // 2
        text = replace_line(launched.json_text, event_line(launched.json_text, seq), None)

        result = verify_text(text)

        assert not result.ok
        assert result.message == (
            f"altered: event #{seq} is missing: the chain jumps from #{seq - 1} to #{seq + 1}"
        )

    def test_cutting_the_tail_is_noticed(self, launched: Launched) -> None:
        data = json.loads(launched.json_text)
        data["audit"] = data["audit"][:-2]
        data["audit_head"] = data["audit"][-1]["hash"]

        result = verify_text(json.dumps(data))

        count = len(launched.dossier.audit)
        assert result.message == (
            f"altered: event #{count - 2} and later are missing: the release recorded {count} "
            f"events, the file holds {count - 2}"
        )

    def test_a_changed_policy_snapshot_is_noticed(self, launched: Launched) -> None:
        data = json.loads(launched.json_text)
        data["policy"]["require_signed_decisions"] = True

        result = verify_text(json.dumps(data))

        assert result.message == (
            "altered: the policy snapshot does not match the sha256 recorded in event #0"
        )

    def test_a_decision_not_in_the_chain_is_noticed(self, launched: Launched) -> None:
        data = json.loads(launched.json_text)
        data["decisions"][0]["person"] = "ed.exec"

        result = verify_text(json.dumps(data))

        assert not result.ok
        assert (
            "decision of ed.exec" in result.message
            and "is not in the audit chain" in result.message
        )

    @pytest.mark.parametrize(
        ("path", "value", "message"),
        [
            (("status", "spec", "artifact", "sha256"), "f" * 64, "the spec's artifact_sha256"),
            (("status", "outcome"), "published elsewhere", "the release's outcome (launched)"),
            (("status", "government", "receipt", "receipt_id"), "GOV-forged", "government receipt"),
            (("status", "grants", 0, "grant_id"), "grant-forged", "grant grant-forged"),
            (
                ("status", "gates", "launch_approval", "decisions", 0, "person"),
                "ed.exec",
                "ed.exec",
            ),
        ],
    )
    def test_the_status_must_agree_with_the_chain(
        self, launched: Launched, path: tuple[object, ...], value: str, message: str
    ) -> None:
        data = json.loads(launched.json_text)
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

        result = verify_text(json.dumps(data))

        assert not result.ok
        assert result.message.startswith("altered: ") and message in result.message


def forged(events: list[AuditEvent]) -> list[AuditEvent]:
    """``events`` renumbered, re-linked and re-hashed, as a forger with the database would."""
    previous, out = GENESIS_HASH, []
    for seq, event in enumerate(events):
        copy = event.model_copy(update={"seq": seq, "prev_hash": previous, "hash": ""})
        copy.hash = event_hash(copy)
        previous = copy.hash
        out.append(copy)
    return out


class TestChainFromTheStore:
    """A finished release's result names its audit chain (length and head) without carrying it;
    the dossier reads the chain from the audit store and takes it only if it is exactly that
    chain: a store that lost, gained or rewrote an event (even re-hashed) is refused in one line,
    and a result that still carries its chain (a release that ended before) is read as before."""

    async def test_the_result_names_the_chain_without_carrying_it(
        self, env: WorkflowEnvironment, launched: Launched
    ) -> None:
        releases = Releases(env.client, "unused", signer=test_keys.signer())
        history = await releases.handle(launched.release_id).fetch_history()
        [ended] = [
            e for e in history.events if e.HasField("workflow_execution_completed_event_attributes")
        ]
        result = ended.workflow_execution_completed_event_attributes.result
        [outcome] = await env.client.data_converter.decode(list(result.payloads), [ReleaseOutcome])

        assert outcome.audit == []
        assert outcome.status == launched.dossier.status
        assert (outcome.status.audit_length, outcome.status.audit_head) == (
            len(launched.dossier.audit),
            launched.dossier.audit[-1].hash,
        )
        assert completed_chain(outcome, stored_chain(launched)) == launched.dossier.audit

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ("lost", "holds {n1} event(s) of {rid}, the release recorded {n}"),
            ("gained", "holds {n2} event(s) of {rid}, the release recorded {n}"),
            ("rewritten", "ends at"),
            ("unlinked", "does not verify at event #3: hash does not match"),
        ],
    )
    async def test_a_store_that_differs_is_refused(
        self, env: WorkflowEnvironment, launched: Launched, change: str, message: str
    ) -> None:
        chain = stored_chain(launched)
        if change == "lost":
            altered = chain[:-1]
        elif change == "gained":
            extra = chain[-1].model_copy(update={"action": "release_withdrawn"})
            altered = forged([*chain, extra])
        elif change == "rewritten":
            details = {**chain[3].details, "forged": True}
            altered = forged(
                [*chain[:3], chain[3].model_copy(update={"details": details}), *chain[4:]]
            )
        else:
            altered = [*chain[:3], chain[3].model_copy(update={"actor": "mallory"}), *chain[4:]]
        n = len(chain)
        expected = message.format(n=n, n1=n - 1, n2=n + 1, rid=launched.release_id)
        releases = Releases(env.client, "unused", signer=test_keys.signer())
        outcome = ReleaseOutcome(status=launched.dossier.status)

        with pytest.raises(ChainMismatch) as refused:
            completed_chain(outcome, altered)
        with dossier_sources(launched.data_dir) as sources, pytest.raises(ChainMismatch) as again:
            await collect_dossier(
                releases, launched.release_id, **{**sources, "audit_events": lambda _: altered}
            )

        for err in (refused.value, again.value):
            assert expected in str(err) and "\n" not in str(err), str(err)
            assert str(err).startswith("the audit store")

    def test_a_result_that_carries_its_chain_is_read_as_before(self, launched: Launched) -> None:
        chain = stored_chain(launched)
        outcome = ReleaseOutcome(status=launched.dossier.status, audit=chain)

        assert completed_chain(outcome, []) == chain


def stored_chain(launched: Launched) -> list[AuditEvent]:
    with DatabaseAuditStore(Settings(data_dir=launched.data_dir).effective_registry_url) as db:
        return db.read(launched.release_id)


class TestAuditStoreFile:
    """An audit-store JSONL file (the chain the worker stored, one event per line, as workers
    kept it before the database) verifies the same way, line by line."""

    def test_store_file_verifies_and_names_an_edited_line(self, launched: Launched) -> None:
        with DatabaseAuditStore(Settings(data_dir=launched.data_dir).effective_registry_url) as db:
            stored = db.read(launched.release_id)
        assert stored == launched.dossier.audit, "the worker stored the whole chain"
        path = launched.data_dir / f"{launched.release_id}.jsonl"
        path.write_text("".join(e.model_dump_json() + "\n" for e in stored))
        text = path.read_text()

        assert verify_file(path).message == (
            f"ok: {len(launched.dossier.audit)} events, head {launched.dossier.audit_head}; "
            "chain only (an audit-store file carries no keys: verify a dossier)"
        )
        lines = text.splitlines()
        lines[3] = lines[3].replace('"actor":"', '"actor":"x', 1)
        result = verify_text("\n".join(lines) + "\n")
        assert result.message.startswith("altered: event #3 (")

    def test_something_else_is_an_input_error(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello\n")

        with pytest.raises(InputError, match="neither a dossier nor an audit file"):
            verify_file(path)

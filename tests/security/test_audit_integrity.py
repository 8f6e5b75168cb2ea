"""A record no one can rewrite: a reset release, a re-hashed forged dossier and a foreign trust
root are caught by ``gatekeeper audit verify``; an intact dossier verifies offline.

Every release here runs on a real dev server with a worker whose key is registered in the
identity registry (certified by an identity admin, under a trust root). The dossiers are exported
and verified by ``gatekeeper`` in a child process; the reset is the real ``temporal`` CLI's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.enums.v1 import EventType

from gatekeeper.audit import event_hash
from gatekeeper.identity.heads import HEAD_ACTION
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models import DecisionKind, DelegationRequest, OperatorRequest, ReleaseState
from gatekeeper.models.audit import AuditEvent
from tests import factories
from tests.anchoring import register_worker
from tests.security.process import Ran, environment, gatekeeper
from tests.workflows.conftest import Harness
from tests.workflows.test_interop import temporal


@dataclass
class Anchored:
    """A harness whose worker signs with a registered key, and the trust root to pin."""

    harness: Harness
    root: str
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        return environment(self.harness)

    async def export(self, release_id: str, name: str) -> Path:
        path = self.tmp / name
        ran = await gatekeeper(
            "audit", "export", release_id, "--format", "json", "--output", str(path), env=self.env
        )
        assert ran.code == 0, ran.stderr
        return path

    async def verify(self, path: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
        return await gatekeeper(
            "audit", "verify", str(path), "--trust-root", self.root, *args, env=env or self.env
        )


@pytest_asyncio.fixture(loop_scope="session")
async def anchored(harness: Harness, tmp_path: Path) -> Anchored:
    root = register_worker(harness.data_dir, harness.adapters.worker_key_path, tmp_path / "keys")
    return Anchored(harness, root, tmp_path)


def offline_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No Temporal server (a closed port) and an empty data directory: no registry database."""
    empty = tmp / "offline-data"
    empty.mkdir(exist_ok=True)
    return environment(TEMPORAL_ADDRESS="127.0.0.1:9", GATEKEEPER_DATA_DIR=str(empty), **extra)


async def rejected_release(harness: Harness) -> str:
    status = await harness.start()
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.approve(rid, "sec.one", "security")
    await harness.releases.decide(
        rid, DecisionKind.REJECT, factories.decision("sam.safety", "safety", comment="evals fail")
    )
    await harness.handle(rid).result()
    return rid


async def delegated_then_withdrawn(harness: Harness) -> str:
    """lee.legal delegates legal to sec.two, who approves; internal review passes; withdrawn."""
    status = await harness.start()
    rid = status.release_id
    await harness.at_stage(rid, "internal_review")
    await harness.releases.delegate(
        rid,
        DelegationRequest(
            by="lee.legal",
            to="sec.two",
            role="legal",
            until=datetime.now(UTC) + timedelta(days=3),
            reason="on leave",
        ),
    )
    await harness.approve(rid, "sec.two", "legal")
    await harness.approve(rid, "sam.safety", "safety")
    await harness.approve(rid, "sec.one", "security")
    await harness.at_stage(rid, "government_testing_window")
    await harness.releases.operate(
        rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="superseded")
    )
    await harness.handle(rid).result()
    return rid


async def reset_point(harness: Harness, release_id: str, update: str) -> int:
    """The last completed workflow task before ``update`` was accepted (what an attacker picks
    to erase it)."""
    history = await harness.handle(release_id).fetch_history()
    last_task = 0
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_task = event.event_id
        if (
            event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            and event.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            == update
        ):
            return last_task
    raise AssertionError(f"no {update} update in the history of {release_id}")


def anchors_in(harness: Harness, release_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(harness.data_dir / "registry.db") as db:
        rows = db.execute(
            "SELECT seq, hash FROM audit_anchors WHERE release_id = ? ORDER BY id", (release_id,)
        ).fetchall()
    return [(int(seq), str(value)) for seq, value in rows]


def rehash(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    previous = "0" * 64
    out = []
    for seq, raw in enumerate(events):
        event = AuditEvent.model_validate({**raw, "seq": seq, "prev_hash": previous, "hash": ""})
        event.hash = event_hash(event)
        previous = event.hash
        out.append(event.model_dump(mode="json"))
    return out


class TestResetRelease:
    """A rejection erased by ``temporal workflow reset --reapply-exclude Update`` leaves the
    release active with a chain consistent with itself; ``audit verify`` names the fork from the
    head anchored before the reset, and the anchor table still holds it."""

    async def test_the_reset_release_is_a_fork(self, anchored: Anchored) -> None:
        harness = anchored.harness
        rid = await rejected_release(harness)
        before = await anchored.export(rid, "before.json")
        original = json.loads(before.read_text())
        rejection = next(e["seq"] for e in original["audit"] if e["action"] == "decision_reject")
        final = anchors_in(harness, rid)[-1]
        assert (await anchored.verify(before)).code == 0

        point = await reset_point(harness, rid, "reject")
        code, out = await temporal(
            harness,
            "workflow",
            "reset",
            "-w",
            f"release-{rid}",
            "-e",
            str(point),
            "--reapply-exclude",
            "Update",
            "--reason",
            "erase the rejection",
        )
        assert code == 0, out
        status = await harness.until(
            rid, lambda s: s.state is ReleaseState.ACTIVE and s.stage == "internal_review"
        )
        assert "sam.safety" not in {d.person for d in status.gates["internal_review"].decisions}, (
            "the reset erased the rejection"
        )
        after = await anchored.export(rid, "after.json")
        data = json.loads(after.read_text())

        verified = await anchored.verify(after)
        without_store = await anchored.verify(after, "--no-anchors")

        assert verified.code == 1, verified.stdout
        assert verified.stdout.strip().startswith(
            f"fork at event {rejection}: anchored head {final[1][:16]}… (event {final[0]}, "
            "release rejected) signed at "
        )
        assert verified.stdout.strip().endswith(
            f"is not this dossier's (the dossier ends at event {len(data['audit']) - 1})"
        )
        assert without_store.code == 1, "the dossier carries the anchors read at export"
        assert anchors_in(harness, rid)[-1] == final, "the anchor is still there"
        assert (await anchored.verify(before)).code == 0, "the original still verifies"


class TestForgedDossier:
    """A dossier that drops a delegation, renames the approver and recomputes every hash (and
    the head, length and status that quote them) fails, naming the first event that differs."""

    async def test_the_first_altered_event_is_named(self, anchored: Anchored) -> None:
        harness = anchored.harness
        rid = await delegated_then_withdrawn(harness)
        path = await anchored.export(rid, "dossier.json")
        dossier = json.loads(path.read_text())
        events = dossier["audit"]
        dropped = next(e["seq"] for e in events if e["action"] == "delegated")
        del events[dropped]
        for event in events:
            if event["action"] == "decision_approve" and event["actor"] == "sec.two":
                event["actor"] = "lee.legal"
                event["details"]["person"] = "lee.legal"
                event["details"]["on_behalf_of"] = None
                event["details"].pop("attestation", None)
        dossier["audit"] = rehash(events)
        dossier["audit_head"] = dossier["audit"][-1]["hash"]
        dossier["status"]["audit_head"] = dossier["audit_head"]
        dossier["status"]["audit_length"] = len(dossier["audit"])
        dossier["status"]["delegations"] = []
        for decision in dossier["status"]["gates"]["internal_review"]["decisions"]:
            if decision["person"] == "sec.two":
                decision["person"], decision["on_behalf_of"] = "lee.legal", None
        dossier["decisions"] = [
            {**d, "person": "lee.legal", "on_behalf_of": None} if d["person"] == "sec.two" else d
            for d in dossier["decisions"]
        ]
        forged = anchored.tmp / "forged.json"
        forged.write_text(json.dumps(dossier, indent=2))
        # The forger also strips every signed head it carries.
        stripped = dict(dossier, anchors=[], signed_heads=[])
        bare = anchored.tmp / "forged-stripped.json"
        bare.write_text(json.dumps(stripped, indent=2))

        offline = await anchored.verify(forged, env=offline_env(anchored.tmp))
        online = await anchored.verify(forged)
        online_bare = await anchored.verify(bare)
        offline_bare = await anchored.verify(bare, env=offline_env(anchored.tmp))

        # Against the heads the worker signed (the dossier's own, or the anchor table's), the
        # first altered event is named.
        for ran in (offline, online, online_bare):
            assert ran.code == 1, ran.stdout
            assert ran.stdout.strip().startswith(f"fork at event {dropped}: anchored head "), (
                ran.stdout
            )
            assert "is not this dossier's" in ran.stdout
        # Offline, with every head stripped, it is at least not signed.
        assert offline_bare.code == 1, offline_bare.stdout
        assert offline_bare.stdout.startswith("not signed: the release ended at event #")


class TestTrustRoot:
    """A dossier whose keys chain to another root than the pinned one fails; with no root pinned
    nothing signed verifies; the root can be pinned in the installation's configuration."""

    async def test_pinned_root(self, anchored: Anchored) -> None:
        harness = anchored.harness
        rid = await rejected_release(harness)
        path = await anchored.export(rid, "dossier.json")
        other = IdentityRegistry(f"sqlite:///{anchored.tmp / 'other.db'}")
        other_root = other.init_root(Ed25519PrivateKey.generate()).key_id
        other.close()
        config = anchored.tmp / "gatekeeper.toml"
        config.write_text(f'[identity]\ntrust_root = "{anchored.root}"\n')

        foreign = await gatekeeper(
            "audit", "verify", str(path), "--trust-root", other_root, env=offline_env(anchored.tmp)
        )
        unpinned = await gatekeeper("audit", "verify", str(path), env=offline_env(anchored.tmp))
        configured = await gatekeeper(
            "audit",
            "verify",
            str(path),
            env=offline_env(anchored.tmp, GATEKEEPER_CONFIG=str(config)),
        )

        assert foreign.code == 1
        assert f"not to the pinned trust root {other_root}" in foreign.stdout
        assert f"chains to root {anchored.root}" in foreign.stdout
        assert unpinned.code == 1
        assert "no trust root is pinned: pass --trust-root KEY_ID" in unpinned.stdout
        assert configured.code == 0, configured.stdout


class TestOffline:
    """An intact dossier verifies with no Temporal server and no database; nothing is created."""

    async def test_an_intact_dossier_verifies_offline(self, anchored: Anchored) -> None:
        harness = anchored.harness
        rid = await delegated_then_withdrawn(harness)
        path = await anchored.export(rid, "dossier.json")
        dossier = json.loads(path.read_text())
        env = offline_env(anchored.tmp)

        ran = await anchored.verify(path, env=env)
        forced = await anchored.verify(path, "--anchors", env=env)

        # The heads live in the anchor table; the dossier carries them as its anchors.
        assert not [e for e in dossier["audit"] if e["action"] == HEAD_ACTION]
        heads = dossier["signed_heads"]
        assert ran.code == 0, ran.stdout
        assert ran.stdout.startswith(f"ok: {len(dossier['audit'])} events, head ")
        assert f"{len(heads)} signed head(s)" in ran.stdout
        assert f"{len(dossier['anchors'])} anchor(s) from the dossier verified" in ran.stdout
        assert len(heads) == len(dossier["anchors"]) >= 2
        assert {k["principal_kind"] for k in dossier["keys"]} >= {"worker", "admin"}
        assert forced.code == 2
        assert "--anchors: the anchor table" in forced.stderr
        assert list((anchored.tmp / "offline-data").iterdir()) == []


class TestAnchorTable:
    """The anchor table takes inserts only: the database refuses an update or a delete."""

    @pytest.mark.parametrize(
        "statement",
        ["UPDATE audit_anchors SET hash = 'x'", "DELETE FROM audit_anchors"],
    )
    async def test_append_only(self, anchored: Anchored, statement: str) -> None:
        rid = await rejected_release(anchored.harness)
        before = anchors_in(anchored.harness, rid)

        with (
            sqlite3.connect(anchored.harness.data_dir / "registry.db") as db,
            pytest.raises(sqlite3.IntegrityError, match="audit anchors are append-only"),
        ):
            db.execute(statement)

        assert anchors_in(anchored.harness, rid) == before != []

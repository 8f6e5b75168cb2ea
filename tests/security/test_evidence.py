"""Evidence roots: a release can make the worker read only regular files under its evidence roots.

Every attack goes through a real release on the dev server: a Temporal client amends (or starts)
a release with evidence the worker must not read, and the status shows a one-line refusal that
blocks the gates and says nothing about the file: no digest anywhere in the status, the history,
the outbox or the audit store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.models import AmendRequest, EvidenceKind, EvidenceRef, ReleaseStatus
from gatekeeper.models.spec import Artifact
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import running_worker, settled
from tests.security.conftest import Harness

SHADOW = Path("/etc/shadow")
#: What an attacker sends as the "expected" digest: anything, hoping for the actual one back.
GUESS = "0" * 64


def file_uri(path: Path | str) -> str:
    return Path(path).as_uri() if not str(path).startswith("file:") else str(path)


def item(item_id: str, uri: str, sha256: str = GUESS) -> EvidenceRef:
    return EvidenceRef(id=item_id, kind=EvidenceKind.OTHER, uri=uri, sha256=sha256)


def sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def history_text(harness: Harness, release_id: str) -> str:
    """The release's whole history as text, with every payload decoded."""
    history = await harness.handle(release_id).fetch_history()
    raw = history.to_json()
    decoded: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and "metadata" in node:
                with contextlib.suppress(ValueError):
                    decoded.append(base64.b64decode(data).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(raw))
    return raw + "\n" + "\n".join(decoded)


def files_text(data_dir: Path) -> str:
    """Everything the worker wrote: outbox, audit store, drop boxes."""
    texts = []
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix in (".jsonl", ".json"):
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


async def amend_and_check(
    harness: Harness, release_id: str, evidence: EvidenceRef
) -> tuple[str, ReleaseStatus, float]:
    """Amend with one item; the amend's message, the status after it, and how long it took."""
    started = time.monotonic()
    result = await harness.releases.amend(
        release_id, AmendRequest(by=factories.SUBMITTER, evidence=[evidence])
    )
    elapsed = time.monotonic() - started
    return result.message, await harness.releases.status(release_id), elapsed


def check_of(status: ReleaseStatus, item_id: str) -> Any:
    [check] = [c for c in status.evidence_checks if c.id == item_id]
    return check


async def assert_held_at_review(harness: Harness, release_id: str) -> None:
    """Every reviewer approved, and the release has settled (nothing in flight; only a request
    could move it now): the gate has still not closed, it waits for an amend (a good file lets
    the same approvals close it at once, see the last test of TestInsideTheRoots)."""
    await settled(harness.handle(release_id))
    status = await harness.releases.status(release_id)
    assert status.stage == "internal_review"
    assert status.gates["internal_review"].closed_at is None
    assert status.awaiting is not None
    assert status.awaiting.people == [factories.SUBMITTER], "it waits for an amend"


async def started(harness: Harness) -> str:
    status = await harness.start()
    await harness.at_stage(status.release_id, "internal_review")
    return status.release_id


probes = ("present", "absent", "climb")


class TestOutsideTheRoots:
    """A file outside the evidence roots is refused before it is looked at: its digest appears
    nowhere, and the refusal is the same whether it exists or not."""

    async def test_etc_shadow_is_refused_and_its_digest_appears_nowhere(
        self, harness: Harness
    ) -> None:
        rid = await started(harness)
        location = file_uri(SHADOW)

        message, status, _ = await amend_and_check(harness, rid, item("shadow", location))

        check = check_of(status, "shadow")
        refusal = f"{location} is outside the evidence roots"
        assert (check.result, check.detail, check.actual) == ("refused", refusal, None)
        assert f"evidence still failing: shadow (refused: {refusal})" in message
        history = await history_text(harness, rid)
        assert refusal in history, "the history is searched where the checks are recorded"
        digest = sha256_of(SHADOW)
        if digest is not None:  # readable here: it must not have been read
            assert digest not in status.model_dump_json()
            assert digest not in history
            assert digest not in files_text(harness.data_dir)

    async def test_existence_outside_the_roots_cannot_be_probed(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        rid = await started(harness)
        exists = tmp_path / "outside" / "real.md"
        exists.parent.mkdir()
        exists.write_text("present")

        await harness.releases.amend(
            rid,
            AmendRequest(
                by=factories.SUBMITTER,
                evidence=[
                    item("present", file_uri(exists)),
                    item("absent", file_uri(tmp_path / "outside" / "no-such.md")),
                    item("climb", f"{file_uri(harness.data_dir)}/../outside/real.md"),
                ],
            ),
        )
        status = await harness.releases.status(rid)

        checks = {c.id: c for c in status.evidence_checks}
        assert [(checks[i].result, checks[i].detail, checks[i].actual) for i in probes] == [
            ("refused", f"{checks[i].uri} is outside the evidence roots", None) for i in probes
        ], "the same answer whether the file exists or not"
        assert sha256_of(exists) not in status.model_dump_json()

    async def test_the_amend_answer_names_the_first_refusals_in_full_and_the_rest_by_id(
        self, harness: Harness
    ) -> None:
        rid = await started(harness)
        names = [f"probe-{i}" for i in range(6)]

        result = await harness.releases.amend(
            rid,
            AmendRequest(
                by=factories.SUBMITTER,
                evidence=[item(name, f"file:///etc/{name}") for name in names],
            ),
        )

        assert result.message.count("(refused: ") == 3
        assert result.message.count("(refused)") == 3
        status = await harness.releases.status(rid)
        assert [c.detail for c in status.evidence_checks if c.id in names] == [
            f"file:///etc/{name} is outside the evidence roots" for name in names
        ], "the status has every refusal"

    async def test_a_release_started_with_outside_evidence_is_refused_and_blocked(
        self, harness: Harness
    ) -> None:
        spec = factories.spec(
            f"r-{uuid.uuid4().hex[:10]}",
            artifact=Artifact(uri=file_uri(SHADOW), sha256=GUESS),
        )
        rid = (await harness.start(spec)).release_id
        status = await harness.at_stage(rid, "internal_review")

        assert check_of(status, "artifact").detail == (
            f"{file_uri(SHADOW)} is outside the evidence roots"
        )
        await harness.pass_internal_review(rid)
        await assert_held_at_review(harness, rid)


class TestInsideTheRoots:
    """Under the roots only regular files within the size limit are hashed; nothing can tie up
    an activity thread; a refused item blocks the gates until an amend fixes it."""

    async def test_dev_zero_and_a_fifo_are_refused_in_seconds(self, harness: Harness) -> None:
        rid = await started(harness)
        fifo = harness.data_dir / "evidence" / "pipe"
        fifo.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(fifo)

        _, status, zero_took = await amend_and_check(harness, rid, item("zero", "file:///dev/zero"))
        _, status, fifo_took = await amend_and_check(harness, rid, item("pipe", file_uri(fifo)))

        assert check_of(status, "zero").detail == "file:///dev/zero is outside the evidence roots"
        assert (check_of(status, "pipe").result, check_of(status, "pipe").detail) == (
            "refused",
            f"{file_uri(fifo)} is not a regular file",
        )
        assert zero_took < 10 and fifo_took < 10

    async def test_a_symlink_inside_the_root_pointing_outside_is_refused(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        rid = await started(harness)
        secret = tmp_path / "secret.txt"
        secret.write_text("the worker's neighbour's secret")
        link = harness.data_dir / "evidence" / "card.md"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(secret)

        _, status, _ = await amend_and_check(harness, rid, item("card", file_uri(link)))

        check = check_of(status, "card")
        assert (check.result, check.detail, check.actual) == (
            "refused",
            f"{file_uri(link)} is outside the evidence roots",
            None,
        )
        digest = sha256_of(secret)
        assert digest is not None
        assert digest not in status.model_dump_json()
        assert digest not in await history_text(harness, rid)

    async def test_a_file_over_the_size_limit_is_refused_without_being_read(
        self, harness: Harness
    ) -> None:
        rid = await started(harness)
        big = harness.data_dir / "evidence" / "weights.bin"
        big.parent.mkdir(parents=True, exist_ok=True)
        with big.open("wb") as handle:  # sparse: 1 GiB and one byte, written in no time
            handle.truncate((1 << 30) + 1)

        _, status, took = await amend_and_check(harness, rid, item("weights", file_uri(big)))

        check = check_of(status, "weights")
        assert (check.result, check.detail, check.actual) == (
            "refused",
            f"{file_uri(big)} is larger than 1 GiB",
            None,
        )
        assert took < 10

    async def test_a_refused_item_blocks_the_gate_until_a_good_file_replaces_it(
        self, harness: Harness
    ) -> None:
        rid = await started(harness)
        good = harness.data_dir / "evidence" / "card-v2.md"
        good.parent.mkdir(parents=True, exist_ok=True)
        good.write_text("# System card v2\n")
        digest = sha256_of(good)
        assert digest is not None

        await amend_and_check(harness, rid, item("card", "file:///dev/zero"))
        await harness.pass_internal_review(rid)
        await assert_held_at_review(harness, rid)

        message, status, _ = await amend_and_check(
            harness, rid, item("card", file_uri(good), digest)
        )

        assert "still failing" not in message
        check = check_of(status, "card")
        assert (check.result, check.actual) == ("ok", digest)
        await harness.pass_internal_review(rid)
        moved = await harness.until(rid, lambda s: s.stage != "internal_review")
        assert moved.gates["internal_review"].closed_at is not None


@pytest_asyncio.fixture(loop_scope="session")
async def configured(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[Harness]:
    """A worker whose [evidence] section comes from its TOML file: /dev and a store are roots,
    files over 1 KiB are refused."""
    store = tmp_path / "store"
    store.mkdir()
    config = tmp_path / "gatekeeper.toml"
    config.write_text(
        f'[evidence]\nroots = ["{store}", "/dev"]\nschemes = ["file"]\nmax_bytes = 1024\n'
    )
    settings = Settings.from_env(
        {"GATEKEEPER_DATA_DIR": str(tmp_path / "data"), "GATEKEEPER_CONFIG": str(config)}
    )
    adapters = open_adapters(settings)
    async with running_worker(env, task_queue, adapters):
        yield Harness(
            env,
            Releases(env.client, task_queue, signer=signing.signer()),
            adapters,
            settings.data_dir,
        )
    adapters.close()


class TestWorkerConfiguration:
    """The worker's TOML file sets the roots, schemes and size limit; a device stays refused
    even under a configured root."""

    async def test_the_configured_roots_schemes_and_limit_apply(
        self, configured: Harness, tmp_path: Path
    ) -> None:
        rid = await started(configured)
        card = tmp_path / "store" / "card.md"
        card.write_text("card")
        big = tmp_path / "store" / "big.bin"
        big.write_bytes(b"x" * 1025)
        digest = sha256_of(card)
        assert digest is not None

        await configured.releases.amend(
            rid,
            AmendRequest(
                by=factories.SUBMITTER,
                evidence=[
                    item("card", file_uri(card), digest),
                    item("zero", "file:///dev/zero"),
                    item("big", file_uri(big)),
                    item("remote", "https://evidence.example/x.pdf"),
                ],
            ),
        )
        status = await configured.releases.status(rid)

        details = {c.id: (c.result, c.detail) for c in status.evidence_checks}
        assert details["card"] == ("ok", "")
        assert details["zero"] == ("refused", "file:///dev/zero is not a regular file")
        assert details["big"] == ("refused", f"{file_uri(big)} is larger than 1 KiB")
        assert details["remote"] == (
            "refused",
            "https://evidence.example/x.pdf: scheme 'https' is not accepted (accepted: file)",
        )


async def gatekeeper(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """``gatekeeper ARGS`` in a child process, connected to the harness's server and queue."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": harness.env.client.namespace,
        "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
        "GATEKEEPER_DATA_DIR": str(harness.data_dir.parent / "cli"),
        "GATEKEEPER_KEYS_DIR": str(signing.shared_keys_dir()),
        "COLUMNS": "250",
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gatekeeper", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


class TestThroughTheCli:
    """`release amend` with a URI the worker must not read answers with the refusal, and
    `release status` shows it in one line, with no digest of the file."""

    async def test_amend_and_status_show_the_one_line_refusal(self, harness: Harness) -> None:
        rid = await started(harness)
        location = file_uri(SHADOW)
        refusal = f"{location} is outside the evidence roots"

        amend = await gatekeeper(
            harness,
            "release", "amend", rid, "--as", factories.SUBMITTER,
            "--new-evidence", f"other:shadow={location}@{GUESS}",
        )  # fmt: skip
        status = await gatekeeper(harness, "release", "status", rid)

        assert amend.returncode == 0, amend.stderr
        assert f"evidence still failing: shadow (refused: {refusal})" in amend.stdout
        assert status.returncode == 0, status.stderr
        lines = [line.strip(" │") for line in status.stdout.splitlines()]
        assert f"evidence shadow refused: {refusal}" in lines, status.stdout
        digest = sha256_of(SHADOW)
        if digest is not None:
            assert digest not in amend.stdout + status.stdout

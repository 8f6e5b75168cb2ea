"""``gatekeeper audit export`` writes a release's dossier; ``gatekeeper audit verify`` checks it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import Result

from gatekeeper.cli.audit import app
from gatekeeper.errors import InputError, ReleaseNotFound
from gatekeeper.models import OperatorRequest
from tests import factories
from tests.anchoring import register_worker
from tests.cli.conftest import Cli, new_id
from tests.workflows.conftest import Harness


async def audit(cli: Cli, *args: str) -> Result:
    """``gatekeeper audit ...`` with the harness's environment (the group is this module's app)."""
    return await asyncio.to_thread(cli.runner.invoke, app, list(args), env=cli.env)


@pytest.fixture
def root(harness: Harness, tmp_path: Path) -> str:
    """The worker's key registered; the trust root to pin."""
    return register_worker(harness.data_dir, harness.adapters.worker_key_path, tmp_path / "keys")


async def withdrawn_release(harness: Harness) -> str:
    rid = new_id()
    await harness.start(factories.spec(rid))
    await harness.at_stage(rid, "internal_review")
    await harness.approve(rid, "sam.safety", "safety", comment="fine by safety")
    await harness.releases.operate(
        rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="superseded by 2.0.1")
    )
    await harness.handle(rid).result()
    return rid


class TestExportAndVerify:
    """A dossier exported as JSON verifies; the same file with one byte changed does not, and the
    command says which event and exits 1. Markdown and HTML go where they are asked."""

    async def test_export_then_verify_then_tamper(
        self, cli: Cli, harness: Harness, tmp_path: Path, root: str
    ) -> None:
        rid = await withdrawn_release(harness)
        path = tmp_path / "dossier.json"

        exported = await audit(cli, "export", rid, "--format", "json", "--output", str(path))
        verified = await audit(cli, "verify", str(path), "--trust-root", root)

        assert exported.exit_code == 0, exported.output
        assert f"wrote the json dossier of {rid}" in exported.stderr
        data = json.loads(path.read_text())
        assert data["status"]["state"] == "withdrawn"
        assert verified.exit_code == 0, verified.output
        assert verified.stdout.startswith(
            f"ok: {len(data['audit'])} events, head {data['audit_head']}; "
        )
        assert "signed head(s) up to event" in verified.stdout

        decision = next(e for e in data["audit"] if e["action"] == "decision_approve")
        original = path.read_text()
        lines = original.splitlines()
        at = next(
            i
            for i, line in enumerate(lines)
            if line.strip().startswith('{"action":"decision_approve"')
        )
        lines[at] = lines[at].replace("fine by safety", "fine by safetx")
        path.write_text("\n".join(lines) + "\n")
        altered = await audit(cli, "verify", str(path), "--trust-root", root)
        path.write_text(
            original.replace("fine by safety", "fine by safetx", 1)
        )  # the status's copy
        restated = await audit(cli, "verify", str(path), "--trust-root", root)

        assert altered.exit_code == 1
        assert altered.stdout.strip() == (
            f"altered: event #{decision['seq']} (decision_approve at {decision['at']}): "
            "hash does not match the event's content"
        )
        assert restated.exit_code == 1
        assert restated.stdout.strip() == (
            f"altered: the decision of sam.safety at {decision['at']} (approve) is not in the "
            "audit chain"
        )

    async def test_markdown_to_stdout_and_html_to_a_file(
        self, cli: Cli, harness: Harness, tmp_path: Path
    ) -> None:
        rid = await withdrawn_release(harness)

        markdown = await audit(cli, "export", rid)
        page = await audit(cli, "export", rid, "-f", "html", "-o", str(tmp_path / "d.html"))

        assert markdown.exit_code == 0, markdown.output
        assert markdown.stdout.startswith(f"# Release dossier: aurora 2.0.0 (release {rid})")
        assert "superseded by 2.0.1" in markdown.stdout
        assert page.exit_code == 0, page.output
        assert "<h2>Decisions</h2>" in (tmp_path / "d.html").read_text()

    async def test_a_running_release_is_exported_from_its_queries(
        self, cli: Cli, harness: Harness, tmp_path: Path, root: str
    ) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        path = tmp_path / "running.json"

        exported = await audit(cli, "export", rid, "-f", "json", "-o", str(path))
        verified = await audit(cli, "verify", str(path), "--trust-root", root)

        assert exported.exit_code == 0, exported.output
        assert json.loads(path.read_text())["execution"] == "running"
        assert verified.exit_code == 0, verified.output


class TestErrors:
    """An unknown release and an unreadable file are Gatekeeper errors (one line, exit code)."""

    async def test_unknown_release(self, cli: Cli) -> None:
        result = await audit(cli, "export", "no-such-release")

        assert isinstance(result.exception, ReleaseNotFound)

    async def test_missing_file(self, cli: Cli, tmp_path: Path) -> None:
        result = await audit(cli, "verify", str(tmp_path / "nothing.json"))

        assert isinstance(result.exception, InputError)

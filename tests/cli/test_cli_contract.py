"""The command line's contract, through ``python -m gatekeeper`` as a child process against the
session's dev server: what an error looks like (one line; one JSON object under ``--json``),
which exit code it has, how ids and filter values are read, how tables fit 80 columns, how times
are written, and that every command takes ``--json``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from gatekeeper.cli import main
from gatekeeper.models import DecisionKind
from gatekeeper.text import when
from tests import factories
from tests.anchoring import register_worker
from tests.cli.conftest import new_id
from tests.cli.test_audit_cli import withdrawn_release
from tests.deploy.cli import admin_command
from tests.orders.conftest import OrderHarness, orders, release_spec, unique
from tests.orders.test_cli import example
from tests.security.process import Ran, environment, gatekeeper
from tests.workers.helpers import free_ports
from tests.workers.test_process import _stop_leftovers
from tests.workflows.conftest import Harness

__all__ = ["orders"]  # the fixture, for the tests of access orders

#: RFC 3339 in UTC, as every JSON output writes a time.
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
#: Words of an internal class name, which no message may show.
CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)*(?:Error|Refused|NotFound|Exists)\b")


async def run(harness: Harness | None, *args: str, columns: int = 400, **env: str) -> Ran:
    return await gatekeeper(*args, env=environment(harness, COLUMNS=str(columns), **env))


def one_error_line(ran: Ran) -> str:
    """The one line an error printed on stderr (nothing on stdout)."""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert ran.stdout == "", ran.stdout
    assert not CLASS_NAME.search(lines[0]), lines[0]
    return lines[0]


def json_error(ran: Ran) -> dict[str, Any]:
    """The one JSON object an error printed on stderr under ``--json`` (nothing on stdout)."""
    body: dict[str, Any] = json.loads(one_error_line(ran))
    assert body["exit_code"] == ran.code
    return body


class TestErrors:
    """An error is one line on stderr; under --json it is one JSON object with the message, the
    exit code and a stable type (never a class name), and a refusal also names its rule."""

    async def test_unknown_release_text_and_json(self, harness: Harness) -> None:
        text = await run(harness, "release", "status", "no-such-release")
        assert text.code == 5
        assert one_error_line(text) == (
            "error: no release 'no-such-release' (see `gatekeeper release list`)"
        )
        as_json = await run(harness, "release", "status", "no-such-release", "--json")
        assert json_error(as_json) == {
            "error": "no release 'no-such-release' (see `gatekeeper release list`)",
            "exit_code": 5,
            "type": "release_not_found",
        }

    async def test_unreachable_and_misconfigured_under_json(self, tmp_path: Path) -> None:
        env = {"TEMPORAL_ADDRESS": "127.0.0.1:1", "GATEKEEPER_DATA_DIR": str(tmp_path / "data")}
        unreachable = json_error(await run(None, "release", "status", "r-1", "--json", **env))
        assert (unreachable["exit_code"], unreachable["type"]) == (4, "unreachable")
        assert unreachable["error"].startswith("cannot reach Temporal at 127.0.0.1:1")
        # A long-running command too: the worker refuses to start without a trust root.
        worker = json_error(await run(None, "worker", "--json", **env))
        assert (worker["exit_code"], worker["type"]) == (3, "config")
        assert "trust root" in worker["error"]

    async def test_usage_error_under_json(self, harness: Harness) -> None:
        ran = await run(harness, "release", "list", "--limit", "0", "--json")
        body = json_error(ran)
        assert (body["exit_code"], body["type"]) == (2, "usage")
        assert "--limit" in body["error"]

    async def test_refused_decision_under_json_names_the_rule(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        before = await harness.releases.status(rid)
        ran = await run(
            harness, "ops", "resume", rid, "--as", factories.OPERATOR, "--reason", "x", "--json"
        )
        body = json_error(ran)
        assert (body["exit_code"], body["type"]) == (7, "refused")
        assert body["rule"] and body["error"]
        after = await harness.releases.status(rid)
        assert (after.state, after.stage, after.status_version) == (
            before.state,
            before.stage,
            before.status_version,
        ), "a refusal changes nothing"

    async def test_bad_input_under_json(self, harness: Harness) -> None:
        ran = await run(harness, "release", "list", "--state", "Held", "--json")
        body = json_error(ran)
        assert (body["exit_code"], body["type"]) == (2, "bad_input")


class TestReleaseIds:
    """A release id is read as the Temporal UI shows it too (``release-<id>``), and an unknown
    one names the closest existing id."""

    async def test_workflow_id_names_the_release(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        ran = await run(harness, "release", "status", f"release-{rid}", "--json")
        assert ran.code == 0, ran.stderr
        assert json.loads(ran.stdout)["release_id"] == rid

        held = await run(
            harness, "ops", "hold", f"release-{rid}", "--as", factories.OPERATOR, "--reason", "x"
        )
        assert held.code == 0, held.stderr
        assert (await harness.releases.status(rid)).state == "held"

    async def test_typo_gets_did_you_mean(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        typo = rid[:-1] + ("x" if rid[-1] != "x" else "y")
        for typed in (typo, f"release-{typo}"):
            ran = await run(harness, "release", "status", typed)
            assert ran.code == 5
            assert one_error_line(ran) == f"error: no release '{typo}' (did you mean '{rid}'?)"

    async def test_decision_on_unknown_release_sends_nothing(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        before = await harness.at_stage(rid, "internal_review")
        ran = await run(
            harness, "review", "approve", rid + "z", "--as", "sam.safety", "--role", "safety"
        )
        assert ran.code == 5
        assert f"did you mean '{rid}'?" in one_error_line(ran)
        after = await harness.releases.status(rid)
        assert after.status_version == before.status_version, "nothing was decided"


class TestFilters:
    """``release list`` checks each filter value against what can exist: states and risk tiers,
    and the stage ids of the installed policies; a typo is refused (exit 2) naming the closest."""

    async def test_typos_are_refused_with_did_you_mean(self, harness: Harness) -> None:
        cases = {
            ("--state", "Held"): "error: --state: 'Held' is not a release state (did you mean "
            "'held'?); one of active, held, suspended, launched, rejected, withdrawn",
            ("--risk-tier", "hgih"): "error: --risk-tier: 'hgih' is not a risk tier (did you "
            "mean 'high'?); one of low, medium, high, critical",
        }
        for (option, value), expected in cases.items():
            ran = await run(harness, "release", "list", option, value)
            assert ran.code == 2, ran
            assert one_error_line(ran) == expected

        role = await run(harness, "release", "list", "--awaiting-role", "operater")
        assert role.code == 2
        assert one_error_line(role).startswith(
            "error: --awaiting-role: 'operater' is not a role of any installed policy (did you "
            "mean 'operator'?); one of "
        )

        stage = await run(harness, "release", "list", "--stage", "goverment_testing_window")
        assert stage.code == 2
        assert one_error_line(stage).startswith(
            "error: --stage: 'goverment_testing_window' is not a stage of any installed policy "
            "(did you mean 'government_testing_window'?); one of "
        )

    async def test_a_stage_of_an_installed_policy_is_accepted(self, harness: Harness) -> None:
        custom = factories.policy(
            policy_id="custom-stages",
            stages=[factories.policy().stages[0].model_copy(update={"id": "bespoke_review"})],
        )
        harness.install(custom)
        ran = await run(harness, "release", "list", "--stage", "bespoke_review")
        assert ran.code == 0, ran.stderr
        assert ran.stdout.startswith("no releases match")


class TestWidth:
    """At 80 columns ``release list`` keeps the id, stage, state, awaited roles and since
    (dropping the rest); ``release status`` wraps its lines and never cuts one."""

    async def test_list_at_80_columns(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        status = await harness.at_stage(rid, "internal_review")
        assert status.awaiting is not None
        await asyncio.sleep(1)  # visibility lags the workflow a little
        ran = await run(harness, "release", "list", "--running", columns=80)
        assert ran.code == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), lines
        assert lines[0].split() == ["release", "stage", "state", "awaiting", "since"]
        row = next(line for line in lines if rid in line)
        assert row.split()[:3] == [rid, "internal_review", "active"]
        assert "safety" in row
        # since: when the awaited roles were first awaited; as a date when the row fits, else
        # how long ago (never folded either way)
        assert when(status.awaiting.since) in row or re.search(
            r"\d+[dhms] ago|\d+[dhms] \d+[dhms] ago", row
        ), row

        wide = await run(harness, "release", "list", "--running", columns=250)
        assert wide.stdout.splitlines()[0].split()[:5] == lines[0].split()
        assert "submitted by" in wide.stdout and "window ends" in wide.stdout

    async def test_status_lines_wrap_and_are_never_cut(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        status = await harness.at_stage(rid, "internal_review")
        assert status.awaiting is not None
        for columns in (60, 80, 120):
            ran = await run(harness, "release", "status", rid, columns=columns)
            assert ran.code == 0, ran.stderr
            lines = ran.stdout.splitlines()
            assert all(len(line) <= columns for line in lines), (columns, lines)
            # The panel's text, its lines joined back together.
            text = " ".join(line.strip("│╭╮╰╯─ ") for line in lines)
            text = " ".join(text.split())
            assert f"waiting for {status.awaiting.what}" in text
            assert f"since {when(status.awaiting.since)}" in text
            # Only the digests are shortened on purpose (their first 16 hex digits).
            assert "…" not in re.sub(r"[0-9a-f]{16}…", "", text), text

    async def test_no_table_cuts_a_cell(self, tmp_path: Path) -> None:
        env = {"GATEKEEPER_DATA_DIR": str(tmp_path / "data")}
        long_id = "p." + "x" * 60
        added = await run(None, "access", "person", "add", long_id, "--location", "gb", **env)
        assert added.code == 0, added.stderr
        ran = await run(None, "access", "person", "list", columns=40, **env)
        lines = ran.stdout.splitlines()
        assert all(len(line) <= 40 for line in lines), lines
        assert "…" not in ran.stdout, "a long id wraps, it is never cut"
        assert "".join(re.findall(r"[px.]+", ran.stdout)).count("x" * 60) == 1


class TestTimes:
    """JSON output writes every time in RFC 3339, UTC (``2026-12-29T22:05:05Z``)."""

    async def test_list_and_status_json(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await asyncio.sleep(1)
        listed = await run(harness, "release", "list", "--json")
        row = next(r for r in json.loads(listed.stdout) if r["release_id"] == rid)
        assert RFC3339.match(row["started_at"]), row
        assert row["window_ends_at"] is None and row["closed_at"] is None

        shown = json.loads((await run(harness, "release", "status", rid, "--json")).stdout)
        assert RFC3339.match(shown["started_at"]) and RFC3339.match(shown["updated_at"])


class TestWatchEnded:
    """``release watch`` on a release that ended long ago shows each past step at its own time,
    not every step at the end time."""

    async def test_each_step_at_its_own_time(self, harness: Harness) -> None:
        rid = new_id()
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")
        await asyncio.sleep(1.2)  # so the stage's start and the release's end differ in seconds
        await harness.releases.decide(
            rid, DecisionKind.REJECT, factories.decision("lee.legal", "legal", comment="no")
        )
        final = await harness.until(rid, lambda s: s.terminal)
        stage = next(s for s in final.stages if s.id == "internal_review")
        assert stage.started_at and final.ended_at

        ran = await run(harness, "release", "watch", rid, "--json")
        assert ran.code == 1, ran.stderr
        (report,) = [json.loads(line) for line in ran.stdout.splitlines()]
        at = {event["change"]: event["at"] for event in report["events"]}
        assert all(RFC3339.match(t) for t in at.values())
        started = at["▶ Internal review started"]
        assert datetime.fromisoformat(started) == stage.started_at
        ended = next(t for change, t in at.items() if change.startswith("■ rejected"))
        assert datetime.fromisoformat(ended) == final.ended_at
        assert started != ended

        text = await run(harness, "release", "watch", rid)
        assert f"{when(stage.started_at, seconds=True)}  ▶ Internal review started" in text.stdout
        assert f"{when(final.ended_at, seconds=True)}  ■ rejected" in text.stdout


class TestRegistryCommands:
    """Registry commands exit 2 on what the registry refuses, with the registry's own sentence
    (no class name); ``access orders`` shows exemptions."""

    async def test_duplicate_person_and_unknown_partner(self, tmp_path: Path) -> None:
        env = {"GATEKEEPER_DATA_DIR": str(tmp_path / "data")}
        first = await run(None, "access", "person", "add", "pat.one", "--json", **env)
        assert first.code == 0, first.stderr
        assert json.loads(first.stdout)["id"] == "pat.one"

        again = await run(None, "access", "person", "add", "pat.one", **env)
        assert again.code == 2
        assert one_error_line(again) == "error: person pat.one already exists"
        as_json = await run(None, "access", "person", "add", "pat.one", "--json", **env)
        assert json_error(as_json) == {
            "error": "person pat.one already exists",
            "exit_code": 2,
            "type": "bad_input",
        }

        nobody = await run(None, "access", "person", "add", "x.y", "--partner", "nobody", **env)
        assert (nobody.code, one_error_line(nobody)) == (2, "error: no partner nobody")
        listed = await run(None, "access", "person", "list", "--json", **env)
        assert [p["id"] for p in json.loads(listed.stdout)] == ["pat.one"], "nothing added"

    async def test_orders_show_exemptions(self, orders: OrderHarness, tmp_path: Path) -> None:
        model = unique("aurora")
        started = await orders.start(release_spec(model))
        order_id = unique("ec")
        order_file = example(
            "export-control-order.yaml", tmp_path / "order.yaml", order_id=order_id, models=[model]
        )
        applied = await run(
            orders, "access", "order", "apply", str(order_file), "--as", factories.OPERATOR
        )
        assert applied.code == 0, applied.stderr

        before = await run(orders, "access", "orders", "--json")
        (row,) = [o for o in json.loads(before.stdout) if o["order_id"] == order_id]
        assert RFC3339.match(row["issued_at"]) and row["exemptions"] == []

        refused = await run(
            orders, "access", "order", "exempt", order_id, "--partner", "nobody-labs",
            "--reason", "letter", "--as", factories.OPERATOR,
        )  # fmt: skip
        assert refused.code == 7
        line = one_error_line(refused)
        assert line.startswith("error: ") and "no partner nobody-labs" in line
        # Not only the CLI's line: what the order workflow answers any client (the raw
        # `temporal` CLI included) names no internal class either.
        history = await orders.env.client.get_workflow_handle(
            f"access-order-{order_id}"
        ).fetch_history()
        failures = [
            e.workflow_execution_update_completed_event_attributes.outcome.failure.message
            for e in history.events
            if e.HasField("workflow_execution_update_completed_event_attributes")
        ]
        refusal = [m for m in failures if "nobody-labs" in m]
        assert refusal == ["the registry refused the exemption: no partner nobody-labs"]

        exempted = await run(
            orders, "access", "order", "exempt", order_id, "--partner", "acme-labs",
            "--model", model, "--reason", "second letter", "--as", factories.OPERATOR,
        )  # fmt: skip
        assert exempted.code == 0, exempted.stderr
        table = await run(orders, "access", "orders")
        (line,) = [line for line in table.stdout.splitlines() if order_id in line]
        assert f"acme-labs ({model})" in line
        assert started.release_id


class TestJsonEverywhere:
    """Every command takes --json but ``demo`` (a show for people, driving the CLI itself)."""

    def test_every_command_has_json(self) -> None:
        main._register()
        missing: list[str] = []

        def walk(command: Any, path: list[str]) -> None:
            if hasattr(command, "commands"):
                for name, sub in command.commands.items():
                    walk(sub, [*path, name])
            elif not any("--json" in getattr(p, "opts", ()) for p in command.params):
                missing.append(" ".join(path))

        walk(typer.main.get_command(main.app), [])
        assert missing == ["demo"]

    async def test_audit_export_and_verify(self, harness: Harness, tmp_path: Path) -> None:
        root = register_worker(
            harness.data_dir, harness.adapters.worker_key_path, tmp_path / "keys"
        )
        rid = await withdrawn_release(harness)
        path = tmp_path / "dossier.json"
        exported = await run(
            harness, "audit", "export", f"release-{rid}", "-o", str(path), "--json"
        )
        assert exported.code == 0, exported.stderr
        summary = json.loads(exported.stdout)
        assert (summary["release_id"], summary["format"], summary["output"]) == (
            rid,
            "md",
            str(path),
        )
        dossier = await run(harness, "audit", "export", rid, "--json")
        assert json.loads(dossier.stdout)["release_id"] == rid, "--json alone: the JSON dossier"
        path.write_text(dossier.stdout)

        verified = await run(harness, "audit", "verify", str(path), "--trust-root", root, "--json")
        assert verified.code == 0, verified.stdout + verified.stderr
        verdict = json.loads(verified.stdout)
        assert verdict["ok"] is True and verdict["head"] == summary["audit_head"]

        path.write_text(dossier.stdout.replace("fine by safety", "fine by safetx"))
        tampered = await run(harness, "audit", "verify", str(path), "--trust-root", root, "--json")
        assert tampered.code == 1
        assert json.loads(tampered.stdout)["ok"] is False

        mixed = await run(harness, "audit", "export", rid, "--format", "html", "--json")
        assert json_error(mixed)["type"] == "bad_input"

    async def test_health_and_codec_key(self, harness: Harness) -> None:
        health = await run(harness, "health", "--json")
        assert health.code == 0, health.stderr
        assert json.loads(health.stdout) == {
            "healthy": True,
            "task_queue": harness.releases.task_queue,
            "pollers": json.loads(health.stdout)["pollers"],
        }
        assert json.loads(health.stdout)["pollers"] >= 1
        key = json.loads((await run(None, "codec-key", "--id", "k9", "--json")).stdout)
        assert key["value"] == f"k9:{key['key']}"


class TestDevJson:
    """``gatekeeper dev --json`` announces itself as one JSON object on stdout (logs on stderr
    as JSON lines) and still stops cleanly on Ctrl-C."""

    async def test_banner_as_json(self, tmp_path: Path) -> None:
        port, ui_port, console_port = free_ports(3)
        data_dir = tmp_path / "gk"
        env = environment(
            None,
            GATEKEEPER_DATA_DIR=str(data_dir),
            GATEKEEPER_KEYS_DIR=str(tmp_path / "keys"),
            GATEKEEPER_TASK_QUEUE="dev-json",
        )
        process = await asyncio.create_subprocess_exec(
            *admin_command(
                "dev", "--json", "--headless", "--port", str(port), "--ui-port", str(ui_port),
                "--console-port", str(console_port),
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            text = ""
            while not text.endswith("}\n"):
                line = await asyncio.wait_for(process.stdout.readline(), 60)
                assert line, f"output ended early: {text}"
                text += line.decode()
            banner = json.loads(text)
            assert banner["temporal_address"] == f"127.0.0.1:{port}"
            assert banner["data_dir"] == str(data_dir.resolve())
            assert banner["task_queue"] == "dev-json"
            assert banner["ui"] is None
            assert banner["console"] == f"http://localhost:{console_port}"
            assert any(p.startswith("voluntary-standard@1") for p in banner["policies"])
            # What another shell must export, as the text banner's `export` lines say.
            assert banner["environment"]["TEMPORAL_ADDRESS"] == f"127.0.0.1:{port}"
            assert banner["environment"]["GATEKEEPER_DATA_DIR"] == str(data_dir.resolve())
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 30) == 0
        finally:
            await _stop_leftovers(process, data_dir)

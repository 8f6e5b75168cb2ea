"""An export-control sequence through the CLI: a ``foreign_persons`` order on two models, a
release of each started after it, a one-model exemption for a UK partner while the first release
is still in its government testing window, its partner grants while the order stands, and the
lift. ``gatekeeper access check`` is asserted for every person and model at every step.

The order commands run as an operator runs them (``python -m gatekeeper`` in a child process:
the real entry point, its error boundary and exit codes); the checks, 12 per step, run the same
``access check`` command in-process (a child process each would take a minute).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gatekeeper.adapters.registry.models import PublicLaunch
from gatekeeper.cli import common, main
from gatekeeper.ledger.suspensions import FOUND_ACTION
from gatekeeper.models import ReleaseState
from gatekeeper.models.enums import Surface
from gatekeeper.models.status import ReleaseStatus
from tests import factories, signing
from tests.orders.conftest import PEOPLE, OrderHarness, partner_policy, release_spec, unique

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "orders"
PERSONS = [
    p.id for p in PEOPLE
]  # alice, bruno, dana (acme-labs, us); chen (brit-ai, gb); pat, fred

Table = dict[tuple[str, str], str]


class Gatekeeper:
    """``gatekeeper`` against the test's server, worker queue, data dir and keys."""

    def __init__(self, orders: OrderHarness) -> None:
        self.env = {
            "TEMPORAL_ADDRESS": orders.env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": orders.env.client.namespace,
            "GATEKEEPER_TASK_QUEUE": orders.releases.task_queue,
            "GATEKEEPER_DATA_DIR": str(orders.data_dir),
            "GATEKEEPER_KEYS_DIR": str(signing.shared_keys_dir()),
        }
        self.runner = CliRunner()

    async def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m gatekeeper ARGS`` in a child process (off the loop hosting the worker)."""
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gatekeeper", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    async def check(self, model: str, person: str) -> str:
        """``access check``: ``allow:<rule>`` or ``deny:<rule>``, the exit code agreeing."""
        args = ["access", "check", "--model", model, "--person", person]
        result = await asyncio.to_thread(self.runner.invoke, main.app, args, env=self.env)
        line = result.output.strip()
        verdict, rest = line.split(" ", 1)
        assert (verdict, result.exit_code) in (("allow", 0), ("deny", 1)), line
        return f"{verdict}:{rest[1 : rest.index(')')]}"

    async def table(self, models: list[str]) -> Table:
        return {(m, p): await self.check(m, p) for m in models for p in PERSONS}


def row(model: str, **by_person: str) -> Table:
    assert sorted(by_person) == sorted(PERSONS), "every person, every step"
    return {(model, person): answer for person, answer in by_person.items()}


def nobody(model: str, **but: str) -> Table:
    """No grant, no order: every person is denied for want of a grant."""
    return row(model, **(dict.fromkeys(PERSONS, "deny:no_grant") | but))


def example(name: str, path: Path, **changes: object) -> Path:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def gk(orders: OrderHarness, monkeypatch: pytest.MonkeyPatch) -> Gatekeeper:
    if not main.app.registered_groups:
        main._register()
    monkeypatch.setattr(common.console, "width", 200)
    return Gatekeeper(orders)


async def actions(orders: OrderHarness, release_id: str) -> list[str]:
    return [e.action for e in await orders.releases.audit(release_id)]


class TestForeignPersonsOrderSequence:
    """A release started after a foreign_persons order, still in testing when a one-model
    exemption arrives, grants to US staff and the exempted UK partner while the order stands;
    the other model's release is never touched by the exemption; checks answer per person."""

    async def test_release_after_order_exemption_grant_and_lift(
        self, orders: OrderHarness, gk: Gatekeeper, tmp_path: Path
    ) -> None:
        aurora, borealis = unique("aurora"), unique("borealis")
        models = [aurora, borealis]
        order_id = unique("ec-2026")
        assert await gk.table(models) == {**nobody(aurora), **nobody(borealis)}

        # 1. The order, before either model has a release: applied, with a warning (no release
        # has used these names yet and no launch made them public).
        order_file = example(
            "export-control-order.yaml", tmp_path / "order.yaml", order_id=order_id, models=models
        )
        applied = await gk.run("access", "order", "apply", str(order_file), "--as", "olga.ops")
        assert applied.returncode == 0, applied.stderr
        assert applied.stderr.strip() == (
            f"warning: order {order_id} names {aurora}, {borealis}, which no release has used "
            "and no launch made public; applying it anyway (a typo? --strict refuses)"
        )
        lines = applied.stdout.splitlines()
        assert lines[0].startswith(f"order {order_id} is active in ")
        assert lines[0].endswith(
            f": {aurora}, {borealis} for foreign_persons; 0 release(s) reached: 0 pending"
        )
        assert lines[1] == (
            "registry: checks deny foreign persons and unknown nationalities, except exempt "
            "partners' staff; no grant is suspended and releases go on granting"
        )
        ordered = {
            **nobody(aurora, bruno="deny:order", dana="deny:fail_closed", chen="deny:order"),
            **nobody(borealis, bruno="deny:order", dana="deny:fail_closed", chen="deny:order"),
        }
        ordered |= {(m, "fred"): "deny:order" for m in models}
        assert await gk.table(models) == ordered

        # 2. Two releases start after the order: aurora goes through review into its 30-day
        # government testing window; borealis goes straight to partner access and grants (the
        # order is enforced per person: its US staff get access, its foreign staff do not).
        first = await orders.start(release_spec(aurora), factories.policy(partner_quorum=False))
        await orders.pass_internal_review(first.release_id)
        await orders.at_stage(first.release_id, "government_testing_window")
        second = await orders.start(release_spec(borealis), partner_policy())
        await orders.parked(second.release_id)
        granted_borealis = row(
            borealis,
            alice="allow:grant",
            bruno="deny:order",
            dana="deny:fail_closed",
            chen="deny:order",
            pat="deny:no_grant",
            fred="deny:order",
        )
        assert await gk.table(models) == {**ordered, **granted_borealis}
        # Started after the order's sweeps, borealis's release found the order in the registry
        # itself before granting and recorded it per person (it went on granting).
        found = await orders.releases.status(second.release_id)
        assert [(o.order_id, o.per_person, o.exempt_partners) for o in found.orders_in_force()] == [
            (order_id, True, [])
        ]
        before_exemption = await actions(orders, second.release_id)
        assert before_exemption.count(FOUND_ACTION) == 1

        # 3. The second letter, while aurora is still in testing: brit-ai (UK) is licensed for
        # aurora only. The exemption reaches aurora's release (the model it names) and not
        # borealis's.
        exemption = example(
            "exemption.yaml",
            tmp_path / "exemption.yaml",
            by="olga.ops",
            partners=["brit-ai"],
            models=[aurora],
            reason="Licence granted to Brit AI and its staff for aurora.",
        )
        exempted = await gk.run("access", "order", "exempt", order_id, "--file", str(exemption))
        assert exempted.returncode == 0, exempted.stderr
        out = exempted.stdout.splitlines()
        assert out[0] == (
            f"order {order_id} is active: {aurora}, {borealis} for foreign_persons; "
            "1 release(s) reached: 0 pending, 1 acknowledged"
        )
        assert out[1].startswith("registry: checks deny foreign persons")
        assert (
            f"exempt: brit-ai for {aurora} (by olga.ops: Licence granted to Brit AI and its "
            "staff for aurora.)"
        ) in out
        status = await orders.orders.status(order_id)
        assert list(status.releases) == [first.release_id]
        ack = status.releases[first.release_id]
        assert (ack.update, ack.outcome, ack.state, ack.stage) == (
            "suspend_access",
            "acknowledged",
            "active",
            "government_testing_window",
        )
        testing = await orders.releases.status(first.release_id)
        assert testing.state is ReleaseState.ACTIVE
        assert testing.active_suspensions() == []
        [recorded] = testing.orders_in_force()
        assert (recorded.order_id, recorded.per_person, recorded.exempt_partners) == (
            order_id,
            True,
            ["brit-ai"],
        )
        untouched: ReleaseStatus = await orders.releases.status(second.release_id)
        assert untouched.suspensions == found.suspensions  # no exemption for borealis
        assert untouched.state is ReleaseState.ACTIVE
        assert await actions(orders, second.release_id) == before_exemption
        exempt_aurora = {**ordered, **granted_borealis, (aurora, "chen"): "deny:no_grant"}
        assert await gk.table(models) == exempt_aurora

        # 4. The window ends while the order stands: aurora grants its partners. US staff and
        # the exempted UK partner's staff have access (rule exemption); the order still denies
        # the others.
        await orders.skip(first.release_id, 31)
        await orders.at_stage(first.release_id, "vetted_partner_access")
        granting = await orders.parked(first.release_id)
        assert granting.state is ReleaseState.ACTIVE
        assert granting.grant_summary.partners == 3  # acme-labs, brit-ai, invited-co
        assert granting.grant_summary.suspended == 0
        granted_aurora = row(
            aurora,
            alice="allow:grant",
            bruno="deny:order",
            dana="deny:fail_closed",
            chen="allow:exemption",
            pat="deny:no_grant",
            fred="deny:order",
        )
        assert await gk.table(models) == {**granted_aurora, **granted_borealis}
        shown = await gk.run("release", "status", first.release_id)
        assert shown.returncode == 0, shown.stderr
        assert f"under order {order_id} (foreign_persons, enforced per person" in shown.stdout

        # 5. The lift, with the safeguards: the output says what holds after it.
        lift = example("lift.yaml", tmp_path / "lift.yaml", by="olga.ops")
        lifted = await gk.run("access", "order", "lift", order_id, "--file", str(lift))
        assert lifted.returncode == 0, lifted.stderr
        out = lifted.stdout.splitlines()
        assert out[0].startswith(f"order {order_id} is lifted in ")
        # The lift looks again for its models' running releases: borealis's, which found the
        # order itself, is restored too.
        assert out[0].endswith("; 2 release(s) reached: 0 pending, 2 acknowledged")
        assert out[1] == "registry: order lifted, 0 grant(s) restored; checks no longer apply it"
        assert "checks enforce the order per person at once" not in lifted.stdout
        assert "lift requires" not in lifted.stdout
        assert (
            "lifted by olga.ops with safeguards: misuse-classifier-v2, "
            "restricted-request-routing, misuse-reporting"
        ) in out
        after = row(
            aurora,
            alice="allow:grant",
            bruno="allow:grant",
            dana="allow:grant",
            chen="allow:grant",
            pat="deny:no_grant",
            fred="deny:no_grant",
        )
        assert await gk.table(models) == {
            **after,
            **{(borealis, p): answer for (_, p), answer in after.items()},
        }
        restored = await orders.releases.status(first.release_id)
        assert restored.orders_in_force() == []
        assert restored.suspensions[0].lifted_by == f"access-order-{order_id}"
        assert (await actions(orders, first.release_id)).count("access_restored") == 1
        for release_id in (first.release_id, second.release_id):
            assert (await orders.releases.status(release_id)).orders_in_force() == []
            assert (await actions(orders, release_id)).count("access_restored") == 1


class TestOrdersNamingUnusedModels:
    """An order naming a model no release has used and no launch made public warns; with
    ``--strict`` it is refused (exit 2, one line) and nothing is applied."""

    async def test_strict_refuses_and_applies_nothing(
        self, orders: OrderHarness, gk: Gatekeeper, tmp_path: Path
    ) -> None:
        used, typo = unique("aurora"), unique("auroar")
        release = await orders.start(release_spec(used), partner_policy())
        await orders.parked(release.release_id)
        order_id = unique("ec")
        order_file = example(
            "export-control-order.yaml", tmp_path / "order.yaml", order_id=order_id,
            models=[used, typo],
        )  # fmt: skip

        refused = await gk.run(
            "access", "order", "apply", str(order_file), "--as", "olga.ops", "--strict"
        )
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"error: order {order_id} names {typo}, which no release has used and no launch "
            "made public; nothing applied (--strict)"
        )
        assert refused.stdout == ""
        missing = await gk.run("access", "order", "status", order_id)
        assert missing.returncode == 5, missing.stderr
        assert order_id not in {o.order_id for o in orders.registry.list_orders()}
        assert (await orders.releases.status(release.release_id)).suspensions == []

        # A model a release has used passes --strict, and so does one whose release is gone
        # from visibility (past the namespace's retention) but whose launch made it public.
        launched = unique("cirrus")
        orders.registry.record_public_launch(
            PublicLaunch(
                release_id=unique("gone"),
                model_name=launched,
                model_version="1.0.0",
                surface=Surface.API,
                launch_id="launch-1",
                published_at=datetime.now(UTC),
            )
        )
        used_only = example(
            "export-control-order.yaml",
            tmp_path / "used.yaml",
            order_id=order_id,
            models=[used, launched],
        )
        applied = await gk.run(
            "access", "order", "apply", str(used_only), "--as", "olga.ops", "--strict"
        )
        assert applied.returncode == 0, applied.stderr
        assert applied.stderr == ""
        assert (await gk.check(used, "alice"), await gk.check(used, "bruno")) == (
            "allow:grant",
            "deny:order",
        )
        assert (await gk.check(launched, "pat"), await gk.check(launched, "fred")) == (
            "allow:public",
            "deny:order",
        )

    async def test_a_shell_without_the_registry_does_not_create_one(
        self, orders: OrderHarness, gk: Gatekeeper, tmp_path: Path
    ) -> None:
        """The check reads the registry only if it exists: an operator's shell elsewhere gets
        visibility's answer and no new, empty registry file."""
        order_id, typo = unique("ec"), unique("auroar")
        order_file = example(
            "export-control-order.yaml", tmp_path / "order.yaml", order_id=order_id, models=[typo]
        )
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        gk.env["GATEKEEPER_DATA_DIR"] = str(elsewhere)
        refused = await gk.run(
            "access", "order", "apply", str(order_file), "--as", "olga.ops", "--strict"
        )
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().endswith("; nothing applied (--strict)")
        assert not (elsewhere / "registry.db").exists()

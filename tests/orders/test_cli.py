"""``gatekeeper access order`` and ``access check``, run in-process against the session server."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gatekeeper.errors import DecisionRefused, OrderFileError
from tests import factories
from tests.orders.conftest import Cli, OrderHarness, partner_policy, release_spec, unique

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "orders"


def example(name: str, path: Path, **changes: object) -> Path:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


class TestOrderCommands:
    """An order's whole life from the command line, as the examples describe it."""

    async def test_apply_exempt_lift(self, orders: OrderHarness, cli: Cli, tmp_path: Path) -> None:
        aurora, borealis = unique("aurora"), unique("borealis")
        started = await orders.start(release_spec(borealis), partner_policy())
        await orders.parked(started.release_id)
        order_id = unique("ec")
        order_file = example(
            "export-control-order.yaml",
            tmp_path / "order.yaml",
            order_id=order_id,
            models=[aurora, borealis],
        )

        applied = await cli("access", "order", "apply", str(order_file), "--as", factories.OPERATOR)
        assert applied.exit_code == 0, applied.output
        assert f"order {order_id} is active" in applied.output
        assert "1 acknowledged" in applied.output
        denied = await cli("access", "check", "--model", borealis, "--person", "bruno")
        assert (denied.exit_code, denied.output.strip()) == (
            1,
            f"deny (order): order {order_id} covers foreign persons",
        )

        # The examples name the shipped policy's export control officer; here it is the test
        # policy's (the worker's default policy says who may exempt and lift).
        exemption = example(
            "exemption.yaml", tmp_path / "exemption.yaml", models=[borealis], by=factories.OPERATOR
        )
        exempted = await cli("access", "order", "exempt", order_id, "--file", str(exemption))
        assert exempted.exit_code == 0, exempted.output
        assert f"exempt: acme-labs for {borealis}" in exempted.output
        allowed = await cli("access", "check", "--model", borealis, "--person", "bruno")
        assert allowed.exit_code == 0, allowed.output

        short = await cli(
            "access", "order", "lift", order_id, "--safeguard", "misuse-classifier-v2",
            "--reason", "review done", "--as", factories.OPERATOR,
        )  # fmt: skip
        # main.main() turns the error into one line and exit code 7; the app raises it.
        assert isinstance(short.exception, DecisionRefused), short.output
        assert short.exception.rule == "safeguards_missing"
        assert "restricted-request-routing" in str(short.exception)

        lifted = await cli(
            "access",
            "order",
            "lift",
            order_id,
            "--file",
            str(example("lift.yaml", tmp_path / "lift.yaml", by=factories.OPERATOR)),
        )
        assert lifted.exit_code == 0, lifted.output
        assert f"order {order_id} is lifted" in lifted.output
        shown = await cli("access", "order", "status", order_id, "--json")
        assert json.loads(shown.output)["state"] == "lifted"
        listed = await cli("access", "order", "list")
        assert order_id in listed.output

    async def test_a_broken_order_file_names_the_line(self, cli: Cli, tmp_path: Path) -> None:
        path = tmp_path / "order.yaml"
        path.write_text("order_id: ec-1\nmodels: []\nscope: everyone\nreason: x\n")
        result = await cli("access", "order", "apply", str(path), "--as", factories.OPERATOR)
        assert isinstance(result.exception, OrderFileError)
        assert result.exception.exit_code == 2
        assert str(result.exception).startswith(f"{path}:2")

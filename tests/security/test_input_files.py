"""Input files are read strictly: a value YAML cannot construct (an impossible date such as
``2026-06-31``, a ``!!int`` that is no number) is a one-line ``file:line:col: field: message``
error with exit 2 in every kind of file, and a policy whose roster gives one public key to two
people is refused by ``policy check``.

Every file is a real example from ``examples/`` with one line changed, run through the CLI in a
child process (``python -m gatekeeper``), as a person would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper import signing
from tests.security.process import Ran, environment, gatekeeper
from tests.workflows.conftest import Harness

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMPOSSIBLE = "'2026-06-31' is not a real date or time (day is out of range for month)"


@dataclass(frozen=True)
class Kind:
    """One kind of input file: its example, the line to change, and the command that reads it."""

    example: str
    line_starts: str
    field: str
    args: tuple[str, ...]


KINDS = {
    "spec": Kind("release.yaml", "  version:", "model.version", ("release", "start", "{file}")),
    "policy": Kind("policy.yaml", "title:", "title", ("policy", "check", "{file}")),
    "order": Kind(
        "orders/export-control-order.yaml",
        "reference:",
        "reference",
        ("access", "order", "apply", "{file}", "--as", "omar.haddad"),
    ),
    "exemption": Kind(
        "orders/exemption.yaml",
        "reference:",
        "reference",
        ("access", "order", "exempt", "ec-2026-07", "--file", "{file}"),
    ),
    "lift": Kind(
        "orders/lift.yaml",
        "reference:",
        "reference",
        ("access", "order", "lift", "ec-2026-07", "--file", "{file}"),
    ),
}


def changed_example(kind: Kind, value: str, directory: Path) -> tuple[Path, int, int]:
    """A copy of the example with ``kind.line_starts``'s value replaced; its path, line, column."""
    lines = (EXAMPLES / kind.example).read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(kind.line_starts))
    lines[index] = f"{kind.line_starts} {value}"
    path = directory / Path(kind.example).name
    path.write_text("\n".join(lines) + "\n")
    return path, index + 1, len(kind.line_starts) + 2


async def run(kind: Kind, path: Path, harness: Harness) -> Ran:
    args = [arg.replace("{file}", str(path)) for arg in kind.args]
    return await gatekeeper(*args, env=environment(harness))


def one_line(ran: Ran) -> str:
    """The single line a refused command printed (policy check writes its problems to stdout)."""
    lines = (ran.stdout + ran.stderr).splitlines()
    assert len(lines) == 1, ran
    return lines[0].removeprefix("error: ")


class TestValuesYamlCannotRead:
    """An impossible date, or a tagged value that is not what its tag says, ends in one located
    line and exit 2, never a traceback, in specs, policies, orders, exemptions and lifts."""

    @pytest.mark.parametrize("name", sorted(KINDS))
    async def test_impossible_date(self, name: str, harness: Harness, tmp_path: Path) -> None:
        kind = KINDS[name]
        path, line, column = changed_example(kind, "2026-06-31", tmp_path)

        ran = await run(kind, path, harness)

        assert ran.code == 2, ran
        assert "Traceback" not in ran.stderr
        assert one_line(ran) == f"{path}:{line}:{column}: {kind.field}: {IMPOSSIBLE}"

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("2026-02-30T10:00:00Z", "'2026-02-30T10:00:00Z' is not a real date or time"),
            ("2026-01-01T25:00:00Z", "'2026-01-01T25:00:00Z' is not a real date or time"),
            ("!!int twelve", "'twelve' cannot be read as int"),
            ("!!float lots", "'lots' cannot be read as float"),
            ("!!timestamp soon", "'soon' is not a real date or time"),
        ],
    )
    async def test_other_values(
        self, value: str, message: str, harness: Harness, tmp_path: Path
    ) -> None:
        kind = KINDS["order"]
        path, line, column = changed_example(kind, value, tmp_path)

        ran = await run(kind, path, harness)

        assert ran.code == 2, ran
        assert one_line(ran).startswith(f"{path}:{line}:{column}: reference: {message}")


class TestSharedPublicKey:
    """``policy check`` refuses a roster on which two people hold the same public key (one
    person could fill two quorum places), naming the second holder's line and the first."""

    async def test_refused(self, tmp_path: Path) -> None:
        _, public = signing.generate_keypair()
        lines = (EXAMPLES / "policy.yaml").read_text().splitlines()
        holders = [i for i, line in enumerate(lines) if line.startswith("  - id: ")][:2]
        for index in reversed(holders):
            lines.insert(index + 1, f"    public_key: {public}")
        path = tmp_path / "policy.yaml"
        path.write_text("\n".join(lines) + "\n")
        second = holders[1] + 2  # one line was inserted above it; one-based

        ran = await gatekeeper("policy", "check", str(path), env=environment())

        assert ran.code == 2, ran
        first_id = lines[holders[0]].removeprefix("  - id: ")
        assert one_line(ran) == (
            f"{path}:{second + 1}:5: roster[1].public_key: the same public key as roster[0] "
            f"('{first_id}'): each person needs a key of their own, or one person fills two "
            "quorum places"
        )

    async def test_distinct_keys_pass(self, tmp_path: Path) -> None:
        lines = (EXAMPLES / "policy.yaml").read_text().splitlines()
        holders = [i for i, line in enumerate(lines) if line.startswith("  - id: ")][:2]
        for index in reversed(holders):
            lines.insert(index + 1, f"    public_key: {signing.generate_keypair()[1]}")
        path = tmp_path / "policy.yaml"
        path.write_text("\n".join(lines) + "\n")

        ran = await gatekeeper("policy", "check", str(path), env=environment())

        assert ran.code == 0, ran
        assert ran.stdout.startswith("ok: ")

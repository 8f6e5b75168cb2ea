"""``gatekeeper <command>`` imports only that command's module (:mod:`gatekeeper.cli.groups`).

Every command used to import every group (the dossier, SQLAlchemy, the console, the Temporal
client...) before doing anything, about half a second of CPU per command. The table of command
words must name every command the full CLI has, or a command would vanish from the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from gatekeeper.cli import groups, main


def full_app_words() -> set[str]:
    main._register()
    command = typer.main.get_command(main.app)
    assert isinstance(command, typer.core.TyperGroup)
    return set(command.commands)


class TestTheTable:
    """Every command word of the full CLI is in the table, and no other."""

    def test_words_of_the_full_cli(self) -> None:
        assert set(groups.MODULES) == full_app_words()

    @pytest.mark.parametrize(
        ("argv", "word"),
        [
            (["release", "status", "x"], "release"),
            (["--data-dir", "/d", "--task-queue", "q", "review", "approve"], "review"),
            (["--data-dir=/d", "temporal-auth", "keygen"], "temporal-auth"),
            (["worker"], "worker"),
            (["--help"], None),
            (["-h", "release"], None),
            ([], None),
            (["relase", "status"], None),  # a typo: every group, so the error can suggest one
            (["--task-queue", "release"], None),  # "release" is the option's value here
        ],
    )
    def test_the_command_word(self, argv: list[str], word: str | None) -> None:
        assert groups.command_word(argv) == word


#: Runs ``gatekeeper <argv>`` as the process does, then writes which command modules it imported.
PROBE = """
import json, sys
from gatekeeper.cli import main
report, argv = sys.argv[1], sys.argv[2:]
code = 0
try:
    main.main(argv, only_the_command=True)
except SystemExit as exit_:
    code = exit_.code or 0
found = sorted(m for m in sys.modules if m.startswith("gatekeeper."))
with open(report, "w") as out:
    json.dump({"code": code, "modules": found}, out)
"""


def imported_by(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """The exit code of ``gatekeeper <argv>`` and the command modules it had imported (by
    their names in ``gatekeeper.cli``; other Gatekeeper modules by their full names)."""
    report = tmp_path / "imported.json"
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, str(report), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.exists(), ran.stderr
    found = json.loads(report.read_text())
    return found["code"], {m.removeprefix("gatekeeper.cli.") for m in found["modules"]}


class TestOneCommandImportsOneModule:
    """A command imports its own group's module (and what that needs), not the others; help on
    the root and an unknown command still see every group."""

    def test_a_command_imports_its_group_only(self, tmp_path: Path) -> None:
        code, modules = imported_by(tmp_path, "temporal-auth", "--help")
        assert code == 0
        assert "temporal_auth" in modules
        assert not modules & {"release", "review", "audit", "access", "keys", "process", "admin"}

    def test_release_and_review_commands_do_not_load_the_dossier(self, tmp_path: Path) -> None:
        """The commands people run most (start, amend, approve...) skip the dossier package
        (its collection and rendering), which only ``release status`` and ``audit`` use."""
        for argv in (["release", "amend", "--help"], ["review", "approve", "--help"]):
            code, modules = imported_by(tmp_path, *argv)
            assert code == 0
            assert not {m for m in modules if m.startswith("gatekeeper.dossier")}, argv

    def test_root_help_lists_every_group(self, tmp_path: Path) -> None:
        code, modules = imported_by(tmp_path, "--help")
        assert code == 0
        assert set(groups.MODULES.values()) <= modules

    def test_an_unknown_command_is_refused_as_before(self) -> None:
        ran = subprocess.run(
            [sys.executable, "-m", "gatekeeper", "relase", "status"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 2
        assert ran.stderr.startswith("error: ") and "relase" in ran.stderr

"""README.md works as written: its shell blocks, run in order against a fresh ``gatekeeper dev``.

Every fenced ``console`` block of README.md is read from the file, so the document cannot drift
from what the commands do. In a block, a line starting ``$ `` is a command; lines starting
``> `` (or following a line ending in ``\\``) continue it; the lines after it, up to the next
command, are output the command must print: each must equal a whole line of its output (stdout
and stderr together, as a terminal shows them), in order, where ``…`` stands for anything.
A command exits 0 unless its comment says ``exit N`` (or ``exits N``), or its shown output
starts with ``error:`` (then any non-zero exit).

A block is run unless the comment right above it says ``<!-- readme: skip (why) -->``. The block
marked ``<!-- readme: dev -->`` is the first terminal (``make dev``): the test starts
``gatekeeper dev`` itself, in the repository, on free ports (the README's 7233 and 8233 stand
for them) with a fresh data directory and HOME under tmp, checks its banner against the lines
shown, and runs every other block in a second shell made only of what the banner says to paste.
That shell works in a scratch directory holding a link to ``examples/``, so the dossier the
README writes does not land in the checkout.

The walkthrough must end with the release ``launched`` and its dossier verified, its
notifications read from the engine's outbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from temporalio.client import Client

from gatekeeper.failures import CONVERTER
from gatekeeper.settings import DEFAULT_TASK_QUEUE
from tests.replaying import Checked, check_task_queue
from workers.demo import free_port
from workers.devserver import temporal_executable

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RELEASE = "aurora-2.0.0"
#: What the README's ports stand for in the banner it shows.
README_PORT, README_UI_PORT, README_CONSOLE_PORT = "7233", "8233", "8400"
BANNER_END = "Press Ctrl-C to stop"
STEP_TIMEOUT = 120.0
DEV_START_TIMEOUT = 120.0

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*readme:\s*(\w+)\b.*-->\s*$")
_EXIT = re.compile(r"#.*\bexits? (\d+)\b")


@dataclass
class Step:
    """One command of a block, with the output lines shown under it."""

    line: int  # 1-based line of the command in README.md
    command: str
    shown: list[str] = field(default_factory=list)

    @property
    def expected_exit(self) -> int | None:
        """The exit code the README promises; ``None`` for any non-zero one."""
        said = _EXIT.search(self.command.splitlines()[-1])
        if said:
            return int(said.group(1))
        if self.shown and self.shown[0].lower().startswith("error:"):
            return None
        return 0


@dataclass
class Block:
    line: int
    kind: str  # run, skip, dev
    steps: list[Step]


def parse(text: str) -> list[Block]:
    """Every ``console`` block of a Markdown text, with its marker and its steps."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise AssertionError(f"README.md:{start + 1}: a code block is never closed")
        i = end + 1
        if fence.group(1) != "console":
            continue
        above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(above)
        kind = marker.group(1) if marker else "run"
        if kind not in ("run", "skip", "dev"):
            raise AssertionError(f"README.md:{start}: unknown marker {kind!r}")
        blocks.append(Block(start + 1, kind, _steps(lines[start + 1 : end], start + 2)))
    return blocks


def _steps(body: list[str], first_line: int) -> list[Step]:
    steps: list[Step] = []
    continued = False
    for offset, raw in enumerate(body):
        if raw.startswith("$ "):
            steps.append(Step(first_line + offset, raw[2:]))
            continued = raw.endswith("\\")
        elif steps and (continued or raw.startswith("> ")):
            text = raw[2:] if raw.startswith("> ") else raw
            steps[-1].command += "\n" + text
            continued = raw.endswith("\\")
        elif steps:
            if raw.strip():
                steps[-1].shown.append(raw.rstrip())
        elif raw.strip():
            raise AssertionError(f"README.md:{first_line + offset}: output before any command")
    return steps


def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split("…")))


def missing_lines(shown: list[str], output: str) -> list[str]:
    """The shown lines the output lacks: each must match a whole line, in order."""
    lines = [line.rstrip() for line in output.splitlines()]
    at = 0
    for index, expected in enumerate(shown):
        pattern = _pattern(expected)
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return shown[index:]
        at += 1
    return []


def problems(step: Step, code: int, output: str) -> list[str]:
    """What is wrong with a command's run against what the README shows; empty when right."""
    found: list[str] = []
    expected = step.expected_exit
    if expected is None and code == 0:
        found.append("exited 0, but the README shows it failing")
    elif expected is not None and code != expected:
        found.append(f"exited {code}, the README says {expected}")
    missing = missing_lines(step.shown, output)
    if missing:
        found.append(f"output lacks the line {missing[0]!r} (in order)")
    return found


# -- parsing and matching, without a server --------------------------------------------------


class TestReadingTheReadme:
    """The README's blocks are read as a reader sees them, and a drifted one is caught."""

    def test_commands_continuations_output_and_markers(self) -> None:
        text = "\n".join(
            [
                "<!-- readme: skip (why) -->",
                "```console",
                "$ make demo",
                "```",
                "",
                "```console",
                "$ for p in a b; do",
                ">   echo $p",
                "> done",
                "a",
                "$ gatekeeper x \\",
                "    --flag   # exits 1 on deny",
                "deny …",
                "```",
                "```sh",
                "$ not a console block",
                "```",
            ]
        )
        skip, run = parse(text)
        assert (skip.kind, [s.command for s in skip.steps]) == ("skip", ["make demo"])
        assert run.kind == "run"
        loop, check = run.steps
        assert loop.command == "for p in a b; do\n  echo $p\ndone" and loop.shown == ["a"]
        assert check.command == "gatekeeper x \\\n    --flag   # exits 1 on deny"
        assert (check.shown, check.expected_exit) == (["deny …"], 1)

    def test_a_shown_line_the_output_lacks_fails(self) -> None:
        step = Step(1, "gatekeeper release status x", ["state launched", "head …"])
        assert problems(step, 0, "state launched\nhead abc\n") == []
        assert problems(step, 0, "state active\nhead abc\n") == [
            "output lacks the line 'state launched' (in order)"
        ]
        # In order, and whole lines: a line shown after another must come after it.
        assert problems(step, 0, "head abc\nstate launched\n") != []
        assert problems(Step(1, "x", ["launched"]), 0, "not launched\n") != []

    def test_exit_codes_are_held_to_what_the_readme_shows(self) -> None:
        refused = Step(1, "gatekeeper review approve r", ["error: not allowed"])
        assert problems(refused, 7, "error: not allowed\n") == []
        assert problems(refused, 0, "error: not allowed\n") == [
            "exited 0, but the README shows it failing"
        ]
        assert problems(Step(1, "gatekeeper ok"), 3, "") == ["exited 3, the README says 0"]
        denied = Step(1, "gatekeeper access check   # exit 1", ["deny …"])
        assert problems(denied, 1, "deny (order): x\n") == []
        assert problems(denied, 0, "deny (order): x\n") == ["exited 0, the README says 1"]

    def test_the_readme_has_one_dev_block_and_runs_the_rest(self) -> None:
        blocks = parse(README.read_text(encoding="utf-8"))
        assert [b.kind for b in blocks].count("dev") == 1
        runnable = [s.command for b in blocks if b.kind == "run" for s in b.steps]
        for needed in ("release start", "audit export", "audit verify", "order apply"):
            assert any(needed in c for c in runnable), f"no README step runs `{needed}`"


class TestUpdatesList:
    """The README names exactly the updates and queries the release workflow has."""

    def test_updates_and_queries(self) -> None:
        from temporalio import workflow

        from workflows.release import ModelReleaseWorkflow

        text = " ".join(README.read_text(encoding="utf-8").split())
        updates = re.search(r"The updates are (.*?)\. The queries are (.*?)\.", text)
        assert updates, "README.md: no 'The updates are ... The queries are ...' sentence"
        defn = workflow._Definition.from_class(ModelReleaseWorkflow)
        assert set(re.findall(r"`(\w+)`", updates.group(1))) == set(defn.updates)
        assert set(re.findall(r"`(\w+)`", updates.group(2))) == set(defn.queries)


# -- the walkthrough, against a real engine -----------------------------------------------------


@dataclass
class Engine:
    process: subprocess.Popen[str]
    banner: list[str]
    exports: dict[str, str]
    port: int
    ui_port: int
    console_port: int


async def _replay_engine(engine: Engine) -> Checked:
    """Replay the histories of everything the walkthrough ran on the engine's task queue."""
    client = await Client.connect(f"127.0.0.1:{engine.port}", data_converter=CONVERTER)
    return await check_task_queue(client, DEFAULT_TASK_QUEUE)


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    # The venv's console scripts (gatekeeper, temporal) as `source .venv/bin/activate` gives,
    # importing this checkout.
    path = [str(Path(sys.executable).parent), str(Path(temporal_executable()).parent)]
    env.update(
        HOME=str(home),
        PATH=os.pathsep.join([*path, env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])]),
        COLUMNS="80",  # the terminal the issue was found in
    )
    return env


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """`make dev` as the README's first terminal runs it: in the repository, on free ports."""
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    # Where `make dev` keeps its data (.gatekeeper under the checkout), moved under tmp.
    env["GATEKEEPER_DATA_DIR"] = str(tmp_path / ".gatekeeper")
    port, ui_port, console_port = free_port(), free_port(), free_port()
    log = (tmp_path / "dev.stderr").open("w")
    command = [sys.executable, "-m", "gatekeeper", "dev", "--port", str(port)]
    command += ["--ui-port", str(ui_port), "--console-port", str(console_port)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        banner = _read_banner(process, tmp_path / "dev.stderr")
        exports = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in banner
            if line.strip().startswith("export ")
        )
        yield Engine(process, banner, exports, port, ui_port, console_port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def _read_banner(process: subprocess.Popen[str], stderr: Path) -> list[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + DEV_START_TIMEOUT
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith(BANNER_END):
            return lines
    raise AssertionError(
        f"gatekeeper dev printed no banner (exit {process.poll()}): {lines}\n"
        f"{stderr.read_text()[-3000:]}"
    )


def _second_shell(engine: Engine, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Only what the banner says to paste, in a scratch directory beside the examples."""
    work = tmp_path / "shell"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    env = _clean_env(tmp_path / "home")
    for name, value in engine.exports.items():
        env[name] = subprocess.run(
            ["bash", "-c", f"printf %s {value}"], capture_output=True, text=True, check=True
        ).stdout  # the shell's own unquoting
    return env, work


def _run(step: Step, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    try:
        ran = subprocess.run(
            ["bash", "-c", step.command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=STEP_TIMEOUT,
        )
    except subprocess.TimeoutExpired as err:
        return 124, f"timed out after {STEP_TIMEOUT:g} s: {err.output or ''}"
    return ran.returncode, ran.stdout


class TestWalkthrough:
    """The step-by-step, run as written, ends with the release launched and its dossier verified."""

    def test_readme_runs_as_written(self, engine: Engine, tmp_path: Path) -> None:
        blocks = parse(README.read_text(encoding="utf-8"))
        [dev] = [b for b in blocks if b.kind == "dev"]
        [make_dev] = dev.steps
        shown = [
            line.replace(README_PORT, str(engine.port))
            .replace(README_UI_PORT, str(engine.ui_port))
            .replace(README_CONSOLE_PORT, str(engine.console_port))
            for line in make_dev.shown
        ]
        missing = missing_lines(shown, "\n".join(engine.banner))
        assert not missing, (
            f"README.md:{make_dev.line}: the dev banner lacks {missing[0]!r}:\n"
            + "\n".join(engine.banner)
        )
        for name in ("GATEKEEPER_DATA_DIR", "GATEKEEPER_KEYS_DIR"):
            assert Path(engine.exports[name]).is_absolute(), f"{name} is not absolute"

        env, work = _second_shell(engine, tmp_path)
        ran: list[tuple[Step, str]] = []
        # Every command and what it printed, for whoever updates the README.
        with (tmp_path / "transcript.txt").open("w", encoding="utf-8") as transcript:
            for block in blocks:
                if block.kind != "run":
                    continue
                for step in block.steps:
                    code, output = _run(step, env, work)
                    transcript.write(f"$ {step.command}\n{output}[exit {code}]\n\n")
                    transcript.flush()
                    wrong = problems(step, code, output)
                    assert not wrong, (
                        f"README.md:{step.line}: `{step.command}` {'; '.join(wrong)}\n{output}"
                    )
                    ran.append((step, output))

        # The walkthrough ends launched, with a dossier that verifies and lists notifications.
        status = _run(Step(0, f"gatekeeper release status {RELEASE} --json"), env, work)
        assert status[0] == 0, status[1]
        assert json.loads(status[1])["state"] == "launched"
        verified = [out for step, out in ran if "gatekeeper audit verify" in step.command]
        assert verified and verified[-1].startswith("ok: "), verified
        [dossier_file] = work.glob("*dossier*.json")
        dossier = json.loads(dossier_file.read_text(encoding="utf-8"))
        assert dossier["release_id"] == RELEASE
        assert dossier["notifications"], "the dossier lists no notification (no outbox read)"
        # Nothing the second shell ran opened a data directory of its own.
        assert not (work / ".gatekeeper").exists()
        # Every workflow the walkthrough ran (the release, the order) replays from scratch
        # with this checkout's code, like the histories of every other test.
        checked = asyncio.run(_replay_engine(engine))
        assert checked.replayed >= 2 and not checked.failures, checked.failures

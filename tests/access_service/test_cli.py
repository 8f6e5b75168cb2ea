"""``gatekeeper access serve`` through the real entry point, in a child process: it prints its
ready line, answers, stops on SIGTERM/SIGINT, and refuses (one line, exit 3) to start without
caller authentication off loopback or without a registry."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.access_service.service import TOKEN
from tests.deploy.cli import admin_command

READY = re.compile(
    r"^access service listening on (http://127\.0\.0\.1:(\d+)) \(view seq \d+, 3 grants\)$"
)


def child_env(registry_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    return env | {"GATEKEEPER_REGISTRY_URL": registry_url, "COLUMNS": "400"} | extra


def write_config(tmp_path: Path, **section: str) -> Path:
    tokens = tmp_path / "gateway-tokens"
    tokens.write_text(TOKEN + "\n")
    lines = [f'tokens_file = "{tokens}"', f'log_file = "{tmp_path / "edge.jsonl"}"']
    lines += [f'{key} = "{value}"' for key, value in section.items()]
    path = tmp_path / "gatekeeper.toml"
    path.write_text("[access_service]\n" + "\n".join(lines) + "\n")
    return path


@contextmanager
def serving(*args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        admin_command("access", "serve", *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().rstrip("\n")
        found = READY.match(line)
        assert found, f"not the ready line: {line!r}"
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


class TestServe:
    """The command prints one ready line with its URL, the view's sequence number and grant
    count, answers decisions over HTTP, and stops cleanly on SIGTERM and SIGINT."""

    @pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
    def test_ready_line_answers_and_stops(
        self, world_url: str, tmp_path: Path, stop: signal.Signals
    ) -> None:
        config = write_config(tmp_path)
        with serving("--config", str(config), "--port", "0", env=child_env(world_url)) as (
            process,
            url,
        ):
            headers = {"X-Gatekeeper-Gateway-Token": TOKEN, "X-Gatekeeper-Model": "aurora"}
            with httpx.Client(base_url=url, timeout=10) as client:
                alice = client.get(
                    "/v1/decision", headers=headers | {"X-Gatekeeper-Person": "alice"}
                )
                bruno = client.get(
                    "/v1/decision", headers=headers | {"X-Gatekeeper-Person": "bruno"}
                )
                anonymous = client.get("/v1/decision", headers={"X-Gatekeeper-Person": "alice"})
            assert alice.status_code == 200 and alice.json()["rule"] == "grant"
            assert bruno.status_code == 403 and bruno.json()["order_id"] == "ec-1"
            assert anonymous.status_code == 401
            process.send_signal(stop)
            out, err = process.communicate(timeout=15)
        # uvicorn finishes the requests under way, then the signal takes its usual course.
        assert process.returncode == {signal.SIGTERM: -signal.SIGTERM, signal.SIGINT: 130}[stop]
        assert TOKEN not in out + err
        edge = (tmp_path / "edge.jsonl").read_text()
        assert '"person":"bruno"' in edge and TOKEN not in edge

    def test_host_and_port_from_the_section(self, world_url: str, tmp_path: Path) -> None:
        config = write_config(tmp_path, host="127.0.0.1")
        env = child_env(world_url, GATEKEEPER_CONFIG=str(config))
        config.write_text(config.read_text() + "port = 0\n")
        with serving(env=env) as (process, url), httpx.Client(base_url=url) as client:
            assert client.get("/healthz").status_code == 200
            process.terminate()
            process.communicate(timeout=15)


class TestRefusals:
    """Nothing listens when the service cannot authenticate its callers or has no registry:
    one line on stderr, exit 3."""

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            admin_command("access", "serve", *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def test_no_caller_auth_off_loopback(self, world_url: str, tmp_path: Path) -> None:
        empty = tmp_path / "empty.toml"
        empty.write_text("")
        for extra in ((), ("--insecure-no-caller-auth",)):
            ran = self.run(
                "--config", str(empty), "--host", "0.0.0.0", "--port", "0", *extra,
                env=child_env(world_url),
            )  # fmt: skip
            assert ran.returncode == 3, ran.stderr
            assert ran.stdout == ""
            [line] = ran.stderr.strip().splitlines()
            assert "access service" in line and "loopback" in line

    def test_no_registry(self, tmp_path: Path) -> None:
        config = write_config(tmp_path)
        missing = f"sqlite:///{tmp_path / 'nothing.db'}"
        ran = self.run("--config", str(config), "--port", "0", env=child_env(missing))
        assert ran.returncode == 3, ran.stderr
        [line] = ran.stderr.strip().splitlines()
        assert "does not exist" in line
        assert not (tmp_path / "nothing.db").exists()

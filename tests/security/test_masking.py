"""Secrets never reach a terminal or a log line: a registry URL's password, tokens and keys are
masked wherever our code formats an error or writes a log line.

Each test gives a real ``gatekeeper`` process (or the logging it configures) a secret that is a
recognisable string and searches everything the process printed for it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from gatekeeper import redact
from gatekeeper.errors import ConfigError, RegistryError
from tests.security.process import environment, gatekeeper
from tests.workflows.conftest import Harness

PASSWORD = "Pw-Sentinel-7f3a9c"
TOKEN = "tok-Sentinel-51be0d"
CODEC_KEY = "Q29kZWNLZXktU2VudGluZWwtOWQ0ZQ=="

URLS = {
    # pg8000: a PostgreSQL driver Gatekeeper does not install (SQLAlchemy 2.1 picks psycopg, which
    # the image and the tests now ship, for a bare postgresql:// URL).
    "missing driver": f"postgresql+pg8000://gatekeeper:{PASSWORD}@127.0.0.1:1/gatekeeper",
    "bad port": f"postgresql://gatekeeper:{PASSWORD}@127.0.0.1:notaport/gatekeeper",
    "unknown dialect": f"nosuch://gatekeeper:{PASSWORD}@127.0.0.1/gatekeeper",
    "percent-encoded": f"postgresql+psycopg2://gatekeeper:{PASSWORD}%40x@db.internal/gatekeeper",
}


@pytest.fixture(autouse=True)
def _forget() -> None:
    redact.forget_all()


class TestCliErrors:
    """A registry URL the CLI cannot use is reported in one line, with its password as ***."""

    @pytest.mark.parametrize("case", sorted(URLS))
    async def test_registry_url_password_is_masked(self, case: str, tmp_path: Path) -> None:
        env = environment(
            GATEKEEPER_REGISTRY_URL=URLS[case], GATEKEEPER_DATA_DIR=str(tmp_path / "data")
        )

        ran = await gatekeeper("access", "partner", "list", env=env)

        assert ran.code == 3, (ran.stdout, ran.stderr)
        assert PASSWORD not in ran.stdout + ran.stderr
        lines = ran.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: registry URL '")
        assert "gatekeeper:***@" in lines[0]
        assert "Traceback" not in ran.stderr

    async def test_worker_start_masks_the_registry_url(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        env = environment(
            harness,
            GATEKEEPER_REGISTRY_URL=URLS["missing driver"],
            GATEKEEPER_DATA_DIR=str(tmp_path / "data"),
            GATEKEEPER_LOG_FORMAT="json",
            GATEKEEPER_LOG_LEVEL="DEBUG",
            GATEKEEPER_CODEC_SERVER_TOKEN=TOKEN,
        )

        ran = await gatekeeper(
            "worker", "--task-queue", f"{harness.releases.task_queue}-x", env=env
        )

        assert ran.code == 3, ran.stderr
        everything = ran.stdout + ran.stderr
        assert PASSWORD not in everything and TOKEN not in everything
        assert (
            "error: registry URL 'postgresql+pg8000://gatekeeper:***@127.0.0.1:1/gatekeeper'"
            in (ran.stderr)
        )


_LOGGING_SCRIPT = """
import logging, structlog
from gatekeeper.errors import RegistryError
from gatekeeper.logging import configure_logging
from gatekeeper.settings import Settings

configure_logging(Settings.from_env(), forward_core_logs=False)
url = "{url}"
logging.getLogger("sqlalchemy.pool").warning("cannot connect to %s", url)
structlog.get_logger("gatekeeper.worker").info("opening registry", url=url, dsn=url)
logging.getLogger("httpx").info("sent Authorization: Bearer {token} to the codec server")
logging.getLogger("gatekeeper").info("key material codec_key={key} loaded")
logging.getLogger("gatekeeper").info("the configured codec keys: {key} and {token}")
try:
    raise RuntimeError(f"boom while opening {{url}}")
except RuntimeError:
    logging.getLogger("gatekeeper").exception("registry failed")
logging.getLogger("gatekeeper").error("activity failed: %s", RegistryError(f"open {{url}}: down"))
"""


class TestLogs:
    """Every log line is masked after it is rendered, whichever library logged the secret and
    in whichever field or traceback it travelled; known secrets are masked even where no
    pattern would find them."""

    @pytest.mark.parametrize("log_format", ["json", "console"])
    async def test_log_lines_are_masked(self, log_format: str, tmp_path: Path) -> None:
        script = _LOGGING_SCRIPT.format(url=URLS["missing driver"], token=TOKEN, key=CODEC_KEY)
        env = environment(
            GATEKEEPER_LOG_FORMAT=log_format,
            GATEKEEPER_DATA_DIR=str(tmp_path),
            GATEKEEPER_REGISTRY_URL=URLS["missing driver"],
            GATEKEEPER_CODEC_KEYS=f"k1:{CODEC_KEY}",
            GATEKEEPER_CODEC_SERVER_TOKEN=TOKEN,
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        text = (out + err).decode()

        assert process.returncode == 0, text
        for secret in (PASSWORD, TOKEN, CODEC_KEY):
            assert secret not in text
        assert "cannot connect to postgresql+pg8000://gatekeeper:***@127.0.0.1:1/gatekeeper" in text
        assert "Bearer ***" in text and "RuntimeError" in text
        assert (
            "boom while opening postgresql+pg8000://gatekeeper:***@127.0.0.1:1/gatekeeper" in text
        )
        if log_format == "json":
            events = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
            assert len(events) == 7
            assert events[1]["url"] == "postgresql+pg8000://gatekeeper:***@127.0.0.1:1/gatekeeper"


class TestErrorMessages:
    """A Gatekeeper error masks its message when it is made, so a secret never reaches the
    activity failure that Temporal stores in a release's history."""

    def test_error_messages_are_masked(self) -> None:
        redact.remember(CODEC_KEY)
        failed = RegistryError(f"open {URLS['missing driver']}: Authorization: Bearer {TOKEN}")
        config = ConfigError(f"codec key {CODEC_KEY} does not decode")

        assert PASSWORD not in str(failed) and TOKEN not in str(failed)
        assert str(failed) == (
            "open postgresql+pg8000://gatekeeper:***@127.0.0.1:1/gatekeeper: Authorization: Bearer ***"
        )
        assert str(config) == "codec key *** does not decode"

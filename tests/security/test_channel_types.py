"""A channel is one of the types the worker knows, configured by its operator: a configuration
naming another type, a field of another type, a relative directory or a secret in place of a
variable's name stops the worker before it dials Temporal, in one line naming the field.

The attacks: smuggling a field of another channel type into a section (an SMTP host on a
webhook, a URL on a file channel), inventing a type, redefining a built-in channel, and writing a
secret's value where its variable's name belongs (which must never be echoed back).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.channels import CONFIGURABLE_TYPES
from tests.adapters.builders import write_worker_config

#: A secret value an operator pasted where the variable's *name* belongs.
CANARY = "canary 5e1d-pasted-secret-value"

BAD_SECTIONS = [
    (
        {"hook": {"type": "pager", "url": "https://hooks.lab.example/gk"}},
        f"channels.hook.type: 'pager' is not a channel type (one of {', '.join(CONFIGURABLE_TYPES)})",
    ),
    (
        {
            "hook": {
                "type": "webhook",
                "url": "https://hooks.lab.example/gk",
                "secret_env": "GK_HOOK",
                "smtp_host": "smtp.evil.example",
            }
        },
        "channels.hook: smtp_host does not apply to webhook channels",
    ),
    (
        {"drop": {"type": "file", "directory": "/srv/notices", "url": "https://evil.example/"}},
        "channels.drop: url does not apply to file channels",
    ),
    (
        {"drop": {"type": "file", "directory": "notices"}},
        "channels.drop.directory: must be an absolute path",
    ),
    (
        {"outbox": {"type": "email", "smtp_host": "smtp.lab.example", "sender": "gk@lab.example"}},
        "channels.outbox: 'outbox' is built in; choose another name",
    ),
    (
        {"logs": {"type": "log"}},
        "channels.logs.type: 'log' is built in: route to the channel 'log' itself",
    ),
    (
        {"hook": {"type": "webhook", "url": "https://hooks.lab.example/gk", "secret_env": CANARY}},
        "channels.hook.secret_env: must be the name of an environment variable",
    ),
]


def worker(config: Path, data: Path, temporal_port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env |= {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "GATEKEEPER_DATA_DIR": str(data),
        "GATEKEEPER_CONFIG": str(config),
    }
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


class TestBadChannelSectionsStopTheWorker:
    """Each bad section: exit 3, exactly one line on stderr naming the file and the field, no
    connection to Temporal, no outbox, and never the pasted secret."""

    @pytest.mark.parametrize(("channels", "message"), BAD_SECTIONS)
    def test_refused(
        self, tmp_path: Path, channels: dict[str, dict[str, object]], message: str
    ) -> None:
        path = write_worker_config(tmp_path / "gatekeeper.toml", channels)
        with socket.create_server(("127.0.0.1", 0)) as temporal:
            temporal.setblocking(False)

            result = worker(path, tmp_path / "data", temporal.getsockname()[1])

            with pytest.raises(BlockingIOError):
                temporal.accept()  # nobody dialled the server
        assert result.returncode == 3, result.stdout + result.stderr
        [line] = result.stderr.strip().splitlines()
        assert f"{path}: {message}" in line
        assert CANARY not in result.stdout + result.stderr
        assert not (tmp_path / "data" / "outbox.jsonl").exists()

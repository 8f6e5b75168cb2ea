"""``gatekeeper identity`` and ``gatekeeper keys`` as an operator uses them, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.identity.keyfiles import read_private_key
from gatekeeper.identity.registry import IdentityRegistry, private_key_id
from gatekeeper.settings import Settings


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = Settings(data_dir=tmp_path / "gk", keys_dir=tmp_path / "keys")
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))
        }
        self.env.update(
            GATEKEEPER_DATA_DIR=str(self.settings.data_dir),
            GATEKEEPER_KEYS_DIR=str(self.settings.keys_dir),
            COLUMNS="250",
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gatekeeper", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def key_id(self, person: str) -> str:
        return private_key_id(read_private_key(self.settings.keys_dir / f"{person}.pem"))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


class TestIdentityInit:
    """``identity init`` writes the root key (mode 600), registers it, and says how to pin it."""

    def test_init_prints_the_key_id_to_pin(self, cli: Cli) -> None:
        result = cli.run("identity", "init")

        assert result.returncode == 0, result.stderr
        root_id = cli.key_id("identity-root")
        assert f'trust_root = "{root_id}"' in result.stdout
        assert (cli.settings.keys_dir / "identity-root.pem").stat().st_mode & 0o777 == 0o600
        log = cli.json("identity", "log")
        assert [(e["seq"], e["action"], e["key_id"]) for e in log] == [(1, "init_root", root_id)]
        verified = cli.run("identity", "verify", "--trust-root", root_id)
        assert verified.returncode == 0
        assert f"ok: 1 identity log entries verify, root {root_id}" in verified.stdout


class TestKeysLifecycle:
    """generate → register → list → rotate → revoke, each signed by an admin from the keys dir."""

    def test_the_whole_lifecycle(self, cli: Cli) -> None:
        root = cli.json("identity", "init")
        admin = cli.json(
            "keys", "generate", "--as", "ida.admin", "--kind", "admin",
            "--register", "--admin", "identity-root",
        )  # fmt: skip
        assert admin["registered"]["principal_kind"] == "admin"
        assert admin["registered"]["certified_by"] == root["key_id"]

        # A person generates a key; it does not count until an admin registers it.
        generated = cli.json("keys", "generate", "--as", "lena.fischer")
        assert generated["registered"] is None
        assert generated["key_id"] == cli.key_id("lena.fischer")
        assert cli.json("keys", "list", "--as", "lena.fischer") == []
        until = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
        registered = cli.json(
            "keys", "register", "--as", "lena.fischer", "--public-key", generated["public_key"],
            "--valid-until", until, "--admin", "ida.admin",
        )  # fmt: skip
        assert registered["key_id"] == generated["key_id"]
        assert registered["valid_until"].startswith(until)
        assert registered["certified_by"] == admin["key_id"]

        [listed] = cli.json("keys", "list", "--as", "lena.fischer")
        assert (listed["key_id"], listed["principal"], listed["status"]) == (
            generated["key_id"],
            "lena.fischer",
            "valid",
        )
        table = cli.run("keys", "list")
        assert table.returncode == 0
        for needle in (generated["key_id"], "lena.fischer", "ida.admin", "identity-root"):
            assert needle in table.stdout

        # Rotation: a new key now, the old one counts for the grace period.
        rotated = cli.json(
            "keys", "rotate", "--as", "lena.fischer", "--grace", "1h", "--admin", "ida.admin"
        )
        assert rotated["replaces"] == generated["key_id"]
        assert rotated["key_id"] == cli.key_id("lena.fischer") != generated["key_id"]
        assert Path(rotated["retired_private_key"]).exists()
        keys = {k["key_id"]: k for k in cli.json("keys", "list", "--as", "lena.fischer")}
        old = keys[generated["key_id"]]
        assert old["revoked_reason"] == f"rotated to {rotated['key_id']}"
        revoked_at = datetime.fromisoformat(old["revoked_at"])
        assert timedelta(minutes=59) < revoked_at - datetime.now(UTC) <= timedelta(hours=1)
        assert old["status"].startswith("valid until")

        # Revocation now.
        revoked = cli.json(
            "keys", "revoke", rotated["key_id"], "--reason", "laptop lost", "--admin", "ida.admin"
        )
        assert revoked["revoked_reason"] == "laptop lost"
        keys = {k["key_id"]: k for k in cli.json("keys", "list", "--as", "lena.fischer")}
        assert keys[rotated["key_id"]]["status"] == "revoked"

        log = cli.json("identity", "log")
        assert [e["action"] for e in log] == [
            "init_root",
            "register",
            "register",
            "rotate",
            "revoke",
        ]
        assert cli.json("identity", "verify") == {"ok": True, "entries": 5, "problems": []}
        with IdentityRegistry(cli.settings.effective_registry_url) as registry:
            assert [r.principal for r in registry.chain_to_root(rotated["key_id"])] == [
                "lena.fischer",
                "ida.admin",
                "identity-root",
            ]

    def test_generate_refuses_to_overwrite_and_register_needs_an_admin(self, cli: Cli) -> None:
        cli.json("identity", "init")
        cli.json("keys", "generate", "--as", "lena.fischer")

        again = cli.run("keys", "generate", "--as", "lena.fischer")
        no_admin = cli.run("keys", "generate", "--as", "bob", "--register")
        bad_kind = cli.run(
            "keys",
            "register",
            "--as",
            "bob",
            "--public-key",
            "x",
            "--kind",
            "robot",
            "--admin",
            "identity-root",
        )

        assert again.returncode == 2 and "already exists" in again.stderr
        assert no_admin.returncode == 2 and "--register needs --admin" in no_admin.stderr
        assert bad_kind.returncode == 2 and "--kind: 'robot' is not one of" in bad_kind.stderr
        assert not (cli.settings.keys_dir / "bob.pem").exists()


class TestWorkerKeyCommand:
    """``identity worker-key`` makes the worker's key where the worker reads it, prints what an
    admin registers, and with --register --admin registers it as a worker key."""

    def test_created_printed_then_registered(self, cli: Cli) -> None:
        cli.json("identity", "init")

        shown = cli.json("identity", "worker-key")
        registered = cli.json("identity", "worker-key", "--register", "--admin", "identity-root")

        path = cli.settings.data_dir / "worker-key.pem"
        assert shown["created"] and shown["registered"] is None
        assert shown["private_key"] == str(path)
        assert shown["key_id"] == private_key_id(read_private_key(path)) == registered["key_id"]
        assert not registered["created"]
        assert registered["registered"]["principal"] == "gatekeeper-worker"
        assert registered["registered"]["principal_kind"] == "worker"

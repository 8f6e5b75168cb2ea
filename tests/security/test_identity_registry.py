"""Attacks on the identity registry through the public interface (``python -m gatekeeper``).

Only a registered identity admin whose key is valid now changes keys; a public key belongs to
one principal; the log of changes cannot be edited without the worker noticing. Each refusal is
one line with the input-error exit code, and the key table and the identity log are unchanged.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.identity.keyfiles import read_private_key, write_private_key
from gatekeeper.identity.registry import IdentityRegistry, private_key_id
from gatekeeper.settings import Settings
from tests.identity_fixtures import admin_key, register_people

EXIT_INPUT = 2
EXIT_CONFIG = 3


@dataclass
class Installation:
    """A data directory with a trust root, an admin (``identity-admin``) and lena.fischer."""

    settings: Settings
    env: dict[str, str]

    @property
    def keys_dir(self) -> Path:
        return self.settings.keys_dir

    def cli(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gatekeeper", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**self.env, **extra},
            check=False,
        )

    def registry(self) -> IdentityRegistry:
        return IdentityRegistry(self.settings.effective_registry_url)

    def state(self) -> tuple[Any, ...]:
        with self.registry() as registry:
            return (registry.keys(), registry.log())

    def new_public_key(self) -> str:
        return signing.public_key_b64(Ed25519PrivateKey.generate())


@pytest.fixture
def installation(tmp_path: Path) -> Installation:
    settings = Settings(data_dir=tmp_path / "gk", keys_dir=tmp_path / "keys")
    with IdentityRegistry(settings.effective_registry_url) as registry:
        register_people(registry, ["lena.fischer"], settings.keys_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    env.update(
        GATEKEEPER_DATA_DIR=str(settings.data_dir),
        GATEKEEPER_KEYS_DIR=str(settings.keys_dir),
        COLUMNS="200",
    )
    return Installation(settings, env)


def refused(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The one error line of a refused command, after checking its exit code and contents."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    # A worker logs (JSON lines) before it refuses; the refusal itself is one line, the last.
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    [line] = errors
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.stdout + result.stderr
    return line


class TestRegisteringWithoutAnAdmin:
    """A key is registered only with the key of a registered identity admin valid now."""

    def test_a_self_made_admin_key_is_refused(self, installation: Installation) -> None:
        # The attacker makes a key file named like an admin and signs with it.
        write_private_key(installation.keys_dir / "mallory.pem", Ed25519PrivateKey.generate())
        before = installation.state()

        result = installation.cli(
            "keys", "register", "--as", "mallory", "--kind", "admin",
            "--public-key", installation.new_public_key(), "--admin", "mallory",
        )  # fmt: skip

        refused(result, EXIT_INPUT, "is not registered; only a registered identity admin")
        assert installation.state() == before

    def test_no_admin_key_at_all_is_refused(self, installation: Installation) -> None:
        before = installation.state()

        result = installation.cli(
            "keys", "register", "--as", "mallory",
            "--public-key", installation.new_public_key(), "--admin", "nobody",
        )  # fmt: skip
        missing = installation.cli(
            "keys", "register", "--as", "mallory", "--public-key", installation.new_public_key()
        )

        refused(result, EXIT_INPUT, "--admin: no key for nobody")
        assert missing.returncode == EXIT_INPUT and "--admin" in missing.stderr
        assert installation.state() == before

    def test_a_person_s_registered_key_is_not_an_admin_key(
        self, installation: Installation
    ) -> None:
        before = installation.state()

        result = installation.cli(
            "keys", "generate", "--as", "mallory", "--register", "--kind", "admin",
            "--admin", "lena.fischer",
        )  # fmt: skip

        refused(result, EXIT_INPUT, "belongs to lena.fischer, a person, not an identity admin")
        assert installation.state() == before
        assert not (installation.keys_dir / "mallory.pem").exists()

    def test_a_revoked_admin_is_refused(self, installation: Installation) -> None:
        second = Ed25519PrivateKey.generate()
        with installation.registry() as registry:
            admin = admin_key(registry, installation.keys_dir)
            registry.register(
                principal="old-admin",
                principal_kind="admin",
                public_key=signing.public_key_b64(second),
                admin_key=admin,
            )
            registry.revoke(private_key_id(second), reason="left the team", admin_key=admin)
        write_private_key(installation.keys_dir / "old-admin.pem", second)
        before = installation.state()

        result = installation.cli(
            "keys", "register", "--as", "mallory", "--kind", "admin",
            "--public-key", installation.new_public_key(), "--admin", "old-admin",
        )  # fmt: skip
        revoking = installation.cli(
            "keys", "revoke", private_key_id(read_private_key(installation.keys_dir / "lena.fischer.pem")),
            "--reason", "spite", "--admin", "old-admin",
        )  # fmt: skip

        refused(result, EXIT_INPUT, "was revoked at", "can no longer change keys")
        refused(revoking, EXIT_INPUT, "was revoked at", "can no longer change keys")
        assert installation.state() == before

    def test_a_second_trust_root_is_refused(self, installation: Installation) -> None:
        before = installation.state()

        result = installation.cli("identity", "init")

        refused(result, EXIT_INPUT, "already has a trust root")
        assert installation.state() == before


class TestClaimingSomeoneElsesKey:
    """A public key belongs to one principal: registering lena's key for another is refused."""

    def test_lena_s_public_key_for_mallory_is_refused(self, installation: Installation) -> None:
        lena = signing.public_key_b64(read_private_key(installation.keys_dir / "lena.fischer.pem"))
        before = installation.state()

        result = installation.cli(
            "keys", "register", "--as", "mallory", "--public-key", lena,
            "--admin", "identity-admin",
        )  # fmt: skip

        refused(result, EXIT_INPUT, "already registered to someone else (lena.fischer)")
        assert installation.state() == before

    @pytest.mark.parametrize(
        ("public_key", "needle"),
        [
            ("not-base64!", "public key is not valid base64"),
            ("AAAA", "an Ed25519 public key is 32 bytes, this one is 3"),
        ],
    )
    def test_a_malformed_public_key_is_refused(
        self, installation: Installation, public_key: str, needle: str
    ) -> None:
        before = installation.state()

        result = installation.cli(
            "keys", "register", "--as", "mallory", "--public-key", public_key,
            "--admin", "identity-admin",
        )  # fmt: skip

        refused(result, EXIT_INPUT, needle)
        assert installation.state() == before


class TestTamperedRegistry:
    """Editing the key table or the identity log behind the registry's back is found: by
    ``identity verify`` (exit 1) and by the worker, which refuses to start (exit 3) before it
    dials Temporal."""

    def _promote_lena(self, installation: Installation) -> None:
        engine = sa.create_engine(installation.settings.effective_registry_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE identity_keys SET principal_kind = 'admin' "
                    "WHERE principal = 'lena.fischer'"
                )
            )
        engine.dispose()

    def test_a_key_promoted_in_the_table_fails_verification_and_stops_the_worker(
        self, installation: Installation
    ) -> None:
        self._promote_lena(installation)
        lena = private_key_id(read_private_key(installation.keys_dir / "lena.fischer.pem"))

        verify = installation.cli("identity", "verify")
        refused(verify, 1, f"key {lena} (lena.fischer) differs from what the identity log says")

        with socket.create_server(("127.0.0.1", 0)) as temporal:
            temporal.setblocking(False)
            worker = installation.cli(
                "worker", TEMPORAL_ADDRESS=f"127.0.0.1:{temporal.getsockname()[1]}"
            )
            with pytest.raises(BlockingIOError):
                temporal.accept()  # nobody dialled the server
        refused(worker, EXIT_CONFIG, "the identity registry cannot be trusted")

    def test_an_edited_log_entry_fails_verification(self, installation: Installation) -> None:
        engine = sa.create_engine(installation.settings.effective_registry_url)
        with engine.begin() as connection:
            # The database refuses the edit while its triggers stand ...
            with (
                pytest.raises(sa.exc.IntegrityError, match="append-only"),
                connection.begin_nested(),
            ):
                connection.execute(sa.text("UPDATE identity_log SET action = 'register'"))
            # ... so the attacker drops them first.
            connection.execute(sa.text("DROP TRIGGER identity_log_no_update"))
            connection.execute(
                sa.text(
                    "UPDATE identity_log SET body = json_set(body, '$.key.principal', 'mallory') "
                    "WHERE seq = 3"
                )
            )
        engine.dispose()

        result = installation.cli("identity", "verify", "--json")

        assert result.returncode == 1
        assert '"ok": false' in result.stdout
        assert "identity log entry 3: its hash does not match its content" in result.stdout


class TestWorkerKeyNotRegistered:
    """A cluster worker whose own key no admin registered refuses to start, in one line naming
    the command to run, before it dials Temporal."""

    def test_the_worker_refuses_and_names_the_command(self, installation: Installation) -> None:
        with socket.create_server(("127.0.0.1", 0)) as temporal:
            temporal.setblocking(False)
            result = installation.cli(
                "worker", TEMPORAL_ADDRESS=f"127.0.0.1:{temporal.getsockname()[1]}"
            )
            with pytest.raises(BlockingIOError):
                temporal.accept()

        public = signing.public_key_b64(
            read_private_key(installation.settings.data_dir / "worker-key.pem")
        )
        refused(
            result,
            EXIT_CONFIG,
            "the worker's key",
            "is not registered",
            f"gatekeeper keys register --as gatekeeper-worker --kind worker --public-key {public}",
        )
        # Registering it as the message says lets the identity check pass.
        registered = installation.cli(
            "keys", "register", "--as", "gatekeeper-worker", "--kind", "worker",
            "--public-key", public, "--admin", "identity-admin",
        )  # fmt: skip
        assert registered.returncode == 0, registered.stderr

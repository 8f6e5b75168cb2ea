"""A shell pointed at the wrong data directory is told so, instead of answering from nothing.

Commands that open the engine's files themselves (the registry, the outbox) would otherwise
create a new, empty registry in silence and answer from it (an empty ``access orders``, a wrong
``access check``) or export a dossier without notifications. Through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.process import environment, gatekeeper
from tests.workflows.conftest import Harness, harness

__all__ = ["harness"]  # the fixture, used below

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
POINTER = (
    "point GATEKEEPER_DATA_DIR at the engine's data directory "
    "(`gatekeeper dev` prints the lines to export)"
)

#: Commands that only read the registry: they must not create one.
READERS = {
    "access partner list": ("access", "partner", "list"),
    "access person list": ("access", "person", "list"),
    "access orders": ("access", "orders"),
    "access grants": ("access", "grants", "aurora-2.0.0"),
    "access check": ("access", "check", "--model", "aurora", "--person", "nadia.ahmed"),
    "policy list": ("policy", "list"),
    "policy show": ("policy", "show", "voluntary-standard@1"),
    "keys list": ("keys", "list"),
    "identity log": ("identity", "log"),
    "release start": ("release", "start", str(EXAMPLES / "release.yaml")),
}


class TestReadersRefuse:
    """A command that only reads refuses a data directory without a registry: exit 3, one line
    naming the directory and how to point at the engine's, and no file is created."""

    @pytest.mark.parametrize("name", sorted(READERS))
    async def test_no_registry_no_answer(self, name: str, tmp_path: Path) -> None:
        data_dir = tmp_path / "not-the-engines"
        env = environment(GATEKEEPER_DATA_DIR=str(data_dir))

        ran = await gatekeeper(*READERS[name], env=env)

        assert ran.code == 3, (ran.stdout, ran.stderr)
        assert ran.stderr.splitlines() == [
            f"error: no registry in the data directory {data_dir} (registry.db does not exist); "
            + POINTER
        ]
        assert ran.stdout == ""
        assert not (data_dir / "registry.db").exists()

    async def test_an_explicit_registry_url_is_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "elsewhere" / "registry.db"
        env = environment(GATEKEEPER_REGISTRY_URL=f"sqlite:///{missing}")

        ran = await gatekeeper("access", "orders", env=env)

        assert ran.code == 3
        assert ran.stderr.splitlines() == [
            f"error: {missing} (GATEKEEPER_REGISTRY_URL) does not exist; point "
            "GATEKEEPER_REGISTRY_URL at the engine's registry"
        ]
        assert not missing.exists()


class TestWritersSaySo:
    """A command that writes may create the registry (a first installation step), and says so
    on stderr, once: the next command finds it."""

    async def test_first_write_creates_with_a_note(self, tmp_path: Path) -> None:
        data_dir = tmp_path / "fresh"
        env = environment(GATEKEEPER_DATA_DIR=str(data_dir))
        add = ("access", "partner", "add", "--tier", "invite_only", "--jurisdiction", "gb")

        first = await gatekeeper(*add[:3], "acme-labs", *add[3:], env=env)
        second = await gatekeeper(*add[:3], "thames", *add[3:], env=env)
        listed = await gatekeeper("access", "partner", "list", "--json", env=env)

        assert first.code == 0, first.stderr
        assert first.stderr.splitlines() == [
            f"note: no registry in the data directory {data_dir} (registry.db does not exist): "
            f"creating a new, empty registry; to use the engine's, {POINTER}"
        ]
        assert first.stdout.strip() == "added partner acme-labs (invite_only, gb)"
        assert (second.code, second.stderr) == (0, "")
        assert {p["id"] for p in json.loads(listed.stdout)} == {"acme-labs", "thames"}


class TestDossierSources:
    """``audit export`` from a shell pointed elsewhere still exports what Temporal holds, and
    says in one line that the registry (its deliveries, key certificates and anchors) was not
    found; pointed at the engine's directory it says nothing of the kind."""

    async def test_export_notes_what_it_lacks(self, harness: Harness, tmp_path: Path) -> None:
        status = await harness.start()
        rid = status.release_id
        elsewhere = tmp_path / "elsewhere"
        out = tmp_path / "dossier.json"

        ran = await gatekeeper(
            "audit", "export", rid, "--format", "json", "-o", str(out),
            env=environment(harness, GATEKEEPER_DATA_DIR=str(elsewhere)),
        )  # fmt: skip

        assert ran.code == 0, ran.stderr
        notes = [line for line in ran.stderr.splitlines() if line.startswith("note: ")]
        assert notes == [
            f"note: no registry in the data directory {elsewhere} (registry.db does not exist): "
            "the dossier lists no notifications and carries no key certificates or anchors; "
            f"{POINTER}",
        ]
        assert json.loads(out.read_text())["notifications"] == []
        assert not elsewhere.exists()

        here = await gatekeeper(
            "audit", "export", rid, "--format", "json", "-o", str(out),
            env=environment(harness),
        )  # fmt: skip

        assert here.code == 0, here.stderr
        assert "note:" not in here.stderr
        assert json.loads(out.read_text())["notifications"], "the engine's send journal lists them"

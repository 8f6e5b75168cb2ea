"""The outbox file is a human-readable mirror: one whole line per append, across processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.adapters.outbox import Outbox
from gatekeeper.errors import DeliveryError


class TestAppend:
    """Each append is one line with the key, when it was written, and the record."""

    def test_an_append_writes_a_line_with_key_and_record(self, tmp_path: Path) -> None:
        outbox = Outbox(tmp_path / "deep" / "outbox.jsonl")

        outbox.append("k1", {"channel": "outbox", "n": 1})

        [line] = (tmp_path / "deep" / "outbox.jsonl").read_text().splitlines()
        record = json.loads(line)
        assert (record["key"], record["channel"], record["n"]) == ("k1", "outbox", 1)
        assert record["written_at"]

    def test_record_may_not_override_the_key(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="key"):
            Outbox(tmp_path / "outbox.jsonl").append("k1", {"key": "other"})

    def test_an_unwritable_path_is_a_retryable_delivery_error(self, tmp_path: Path) -> None:
        (tmp_path / "outbox.jsonl").mkdir()

        with pytest.raises(DeliveryError) as caught:
            Outbox(tmp_path / "outbox.jsonl").append("k1", {})

        assert caught.value.retryable is True

    def test_sync_of_a_missing_file_is_harmless(self, tmp_path: Path) -> None:
        outbox = Outbox(tmp_path / "outbox.jsonl")
        outbox.sync()
        outbox.append("k1", {})
        outbox.sync()
        assert [r["key"] for r in outbox.read()] == ["k1"]

    def test_a_torn_last_line_is_skipped_and_ended(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        Outbox(path).append("k1", {})
        with path.open("ab") as handle:  # a writer that died mid-line
            handle.write(b'{"key":"k2","writ')

        Outbox(path).append("k2", {})

        assert [r["key"] for r in Outbox(path).read()] == ["k1", "k2"]


class TestProcesses:
    """Lines of processes sharing the file never interleave."""

    def test_two_processes_appending(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        script = (
            "import sys\n"
            "from pathlib import Path\n"
            "from gatekeeper.adapters.outbox import Outbox\n"
            "outbox = Outbox(Path(sys.argv[1]))\n"
            "for i in range(500):\n"
            "    outbox.append(f'{sys.argv[2]}{i}', {'pad': 'x' * 2000})\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("a", "b")
        ]

        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        lines = path.read_text().splitlines()
        assert len(lines) == 1000
        assert {json.loads(line)["key"] for line in lines} == {
            f"{n}{i}" for n in "ab" for i in range(500)
        }

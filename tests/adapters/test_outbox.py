"""The outbox records each key once, across threads, instances and processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gatekeeper.adapters.outbox import Outbox
from gatekeeper.errors import DeliveryError


class TestAppend:
    """A key is written once; a repeated key is refused and the file is untouched."""

    def test_first_append_writes_a_line_with_key_and_record(self, tmp_path: Path) -> None:
        outbox = Outbox(tmp_path / "deep" / "outbox.jsonl")

        assert outbox.append("k1", {"channel": "outbox", "n": 1}) is True

        [line] = (tmp_path / "deep" / "outbox.jsonl").read_text().splitlines()
        record = json.loads(line)
        assert record["key"] == "k1"
        assert record["channel"] == "outbox"
        assert record["n"] == 1
        assert record["written_at"]

    def test_repeated_key_is_not_written_again(self, tmp_path: Path) -> None:
        outbox = Outbox(tmp_path / "outbox.jsonl")
        outbox.append("k1", {"n": 1})

        assert outbox.append("k1", {"n": 2}) is False

        assert [r["n"] for r in outbox.read()] == [1]
        assert outbox.contains("k1")
        assert not outbox.contains("k2")

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
        assert outbox.contains("k1")


class TestSharedFile:
    """Instances sharing a file (workers) see each other's keys without rescanning."""

    def test_second_instance_sees_keys_written_by_the_first(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        first, second = Outbox(path), Outbox(path)

        assert first.append("k1", {"by": "first"}) is True
        assert second.append("k1", {"by": "second"}) is False
        assert second.append("k2", {"by": "second"}) is True
        assert first.append("k2", {"by": "first"}) is False

        assert [(r["key"], r["by"]) for r in first.read()] == [
            ("k1", "first"),
            ("k2", "second"),
        ]

    def test_a_fresh_instance_loads_existing_keys(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        Outbox(path).append("k1", {})

        assert Outbox(path).contains("k1")
        assert Outbox(path).append("k1", {}) is False

    def test_a_torn_last_line_is_skipped_and_ended(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        outbox = Outbox(path)
        outbox.append("k1", {})
        with path.open("ab") as handle:  # a writer that died mid-line
            handle.write(b'{"key":"k2","writ')

        assert outbox.append("k2", {}) is True
        assert Outbox(path).append("k3", {}) is True

        assert [r["key"] for r in Outbox(path).read()] == ["k1", "k2", "k3"]
        assert Outbox(path).contains("k2")

    def test_a_truncated_file_is_read_again_from_the_start(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        outbox = Outbox(path)
        outbox.append("k1", {})
        outbox.append("k2", {})
        path.write_text(json.dumps({"key": "k9"}) + "\n")

        assert outbox.contains("k9")
        assert not outbox.contains("k1")


class TestConcurrency:
    """However writers interleave, every key ends up in the file exactly once."""

    def test_threads_with_own_and_shared_instances(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        shared = Outbox(path)
        instances = [shared, shared, Outbox(path), Outbox(path), Outbox(path), Outbox(path)]
        keys = [f"k{i}" for i in range(300)]
        wins: list[int] = []
        barrier = threading.Barrier(len(instances))

        def work(outbox: Outbox) -> None:
            barrier.wait()
            wins.append(sum(outbox.append(key, {}) for key in keys))

        threads = [threading.Thread(target=work, args=(o,)) for o in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(wins) == len(keys)
        assert sorted(r["key"] for r in Outbox(path).read()) == sorted(keys)

    def test_two_processes_appending_the_same_keys(self, tmp_path: Path) -> None:
        path = tmp_path / "outbox.jsonl"
        # Opposite orders and a pause between appends make the processes interleave and meet
        # in the middle (flock is not fair: without pauses one process tends to take every key).
        script = (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from gatekeeper.adapters.outbox import Outbox\n"
            "outbox = Outbox(Path(sys.argv[1]))\n"
            "keys = [f'k{i}' for i in range(1000)][:: int(sys.argv[2])]\n"
            "sys.stdin.readline()\n"
            "wins = 0\n"
            "for key in keys:\n"
            "    wins += outbox.append(key, {})\n"
            "    time.sleep(0.0002)\n"
            "print(wins)\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(path), step],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for step in ("1", "-1")
        ]
        for proc in procs:  # start both only once both are ready
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        wins = [int(p.communicate(timeout=60)[0]) for p in procs]

        assert [p.returncode for p in procs] == [0, 0]
        assert sum(wins) == 1000
        lines = path.read_text().splitlines()
        assert len(lines) == 1000
        assert {json.loads(line)["key"] for line in lines} == {f"k{i}" for i in range(1000)}

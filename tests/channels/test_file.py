"""The ``file`` channel, opened the way a worker opens every channel (the registry), writes each
delivery once as one JSON file: the channel type that proves a new type is one module."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from activities import open_adapters
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, delivery_key
from gatekeeper.channels import ChannelContext
from gatekeeper.channels.file import FileSettings, file_name
from gatekeeper.config import load_worker_config
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import NotifyRequest
from gatekeeper.settings import Settings
from tests.adapters.builders import notification, notify_request, write_worker_config
from tests.journals import Journals, journal_at, unrecord

pytestmark = pytest.mark.usefixtures("journals")


def worker_notifier(data: Path, directory: Path) -> tuple[Notifier, ChannelContext]:
    """A worker's notifier (every registered type bound) whose configuration defines ``drop`` as
    a file channel writing to ``directory``."""
    context = ChannelContext(journal=journal_at(data / "outbox.jsonl"))
    settings = FileSettings(type="file", directory=directory)
    return Notifier(ChannelRegistry.for_worker(context), configured={"drop": settings}), context


def notify(data: Path, directory: Path, request: NotifyRequest) -> list[bool]:
    notifier, context = worker_notifier(data, directory)
    try:
        return [d.duplicate for d in notifier.notify(request).deliveries]
    finally:
        context.close()


def outbox_lines(data: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (data / "outbox.jsonl").read_text().splitlines()]


class TestFileChannel:
    """Each delivery is one file named by its key's digest, holding the key, the channel, the
    recipient, the notification and a text for people; the outbox records it as a ``file``
    delivery; nothing half-written is left behind."""

    def test_one_file_per_delivery(self, tmp_path: Path) -> None:
        request = notify_request(3, channel="drop")
        directory = tmp_path / "drop"

        assert notify(tmp_path, directory, request) == [False, False, False]

        keys = [delivery_key(request.notification, r) for r in request.recipients]
        assert sorted(p.name for p in directory.iterdir()) == sorted(map(file_name, keys))
        for recipient, key in zip(request.recipients, keys, strict=True):
            document = json.loads((directory / file_name(key)).read_text())
            assert document["idempotency_key"] == key
            assert document["channel"] == "drop"
            assert document["recipient"]["id"] == recipient.id
            assert document["notification"]["subject"] == request.notification.subject
            assert "What is needed from you" in document["text"]
        lines = outbox_lines(tmp_path)
        assert [(line["key"], line["channel_type"]) for line in lines] == [
            (key, "file") for key in keys
        ]

    def test_a_second_dispatch_writes_nothing(self, tmp_path: Path) -> None:
        request = notify_request(3, channel="drop")
        directory = tmp_path / "drop"
        notify(tmp_path, directory, request)
        written = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}

        assert notify(tmp_path, directory, request) == [True, True, True]
        assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == written
        assert len(outbox_lines(tmp_path)) == 3

    def test_a_file_written_before_a_crash_is_not_written_again(
        self, tmp_path: Path, journals: Journals
    ) -> None:
        # An attempt that died after writing the files but before recording the deliveries.
        request = notify_request(2, channel="drop")
        directory = tmp_path / "drop"
        notify(tmp_path, directory, request)
        for recipient in request.recipients:
            unrecord(journals.url, delivery_key(request.notification, recipient))
        (tmp_path / "outbox.jsonl").unlink()
        before = {p.name: p.read_bytes() for p in directory.iterdir()}

        assert notify(tmp_path, directory, request) == [True, True]
        assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
        assert len(outbox_lines(tmp_path)) == 2

    def test_two_workers_at_once_write_each_file_once(self, tmp_path: Path) -> None:
        request = notify_request(200, channel="drop")
        directory = tmp_path / "drop"
        results: list[list[bool]] = []
        start = threading.Barrier(2)

        def worker() -> None:
            start.wait()
            results.append(notify(tmp_path, directory, request))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        written = [not dup for result in results for dup in result]
        assert sum(written) == 200, "each delivery written by exactly one of the two"
        assert len(list(directory.iterdir())) == 200, "and nothing partial left behind"
        assert len({line["key"] for line in outbox_lines(tmp_path)}) == 200

    def test_an_unwritable_directory_fails_naming_the_channel_only(self, tmp_path: Path) -> None:
        occupied = tmp_path / "not-a-directory"
        occupied.write_text("")

        with pytest.raises(DeliveryError) as caught:
            notify(tmp_path, occupied, notify_request(1, channel="drop"))

        message = str(caught.value)
        assert "file channel 'drop' could not write" in message
        assert str(occupied) not in message and "\n" not in message
        assert caught.value.retryable


class TestFileChannelOnAWorker:
    """A worker whose configuration file defines a file channel delivers on it through the
    adapters it opens (nothing besides the configuration names the type)."""

    def test_configured_in_toml(self, tmp_path: Path, database_url: str) -> None:
        directory = tmp_path / "notices"
        path = write_worker_config(
            tmp_path / "gatekeeper.toml", {"drop": {"type": "file", "directory": str(directory)}}
        )
        settings = Settings(
            data_dir=tmp_path / "data",
            registry_url=database_url,
            config=load_worker_config(path),
        )
        adapters = open_adapters(settings)
        try:
            result = adapters.notifier.notify(notify_request(2, channel="drop"))
        finally:
            adapters.close()

        assert [(d.channel, d.channel_type, d.duplicate) for d in result.deliveries] == [
            ("drop", "file", False)
        ] * 2
        assert len(list(directory.iterdir())) == 2
        assert notification().idempotency_key in (tmp_path / "data" / "outbox.jsonl").read_text()

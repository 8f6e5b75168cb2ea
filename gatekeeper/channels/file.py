"""Channel type ``file``: each delivery one JSON file in a directory, for another program to
pick up (a mail gateway, a ticketing bridge, a shared folder).

Configured by the operator of the worker::

    [channels.ticket-drop]
    type = "file"
    directory = "/srv/gatekeeper/notices"     # absolute; created if missing

A delivery is the file ``<sha256 of its key>.json`` holding the same document a webhook posts
(:func:`~gatekeeper.channels.messages.notification_document`). It appears whole or not at all
(written beside under a name starting with ``.``, synced, then linked into place), and exactly
once: a key the send journal (the database, shared by every worker) has recorded is not written
again, and linking fails if the file exists, so a retried activity or a second worker sharing
the directory never writes it twice. Programs picking files up read ``*.json`` only (a worker
that dies mid-write can leave a ``.*.partial`` behind). The journal records the delivery, and
the outbox file gets its line, as for every channel.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from gatekeeper.channels.base import (
    ChannelConfig,
    ChannelContext,
    ChannelFactory,
    ChannelSettings,
    ChannelType,
    settings_of,
)
from gatekeeper.channels.messages import DeliveryRecords, notification_document
from gatekeeper.errors import DeliveryError

if TYPE_CHECKING:
    from gatekeeper.channels.base import SendJournal
    from gatekeeper.models.io import Notification, Recipient


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise PydanticCustomError("directory", "must be an absolute path")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in str(path)):
        raise PydanticCustomError("control", "must not contain control characters")
    return path


class FileSettings(ChannelSettings):
    """A directory the worker writes one JSON file per delivery into."""

    type: Literal["file"]
    directory: Annotated[Path, AfterValidator(_absolute)] = Field(repr=False)


def file_name(key: str) -> str:
    """The file a delivery is written to: named by its key's digest (keys hold ``:``)."""
    return f"{hashlib.sha256(key.encode()).hexdigest()}.json"


class FileChannel:
    """Writes each delivery as one file of ``directory``, once per key."""

    def __init__(self, config: ChannelConfig, directory: Path, journal: SendJournal) -> None:
        self._config = config
        self._directory = directory
        self._journal = journal
        self._records = DeliveryRecords(config)
        self._wrote = False

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        if self._journal.already_delivered(key):
            return False
        return self._deliver(notification, recipient, key)

    def deliver_many(self, items: Sequence[tuple[Notification, Recipient, str]]) -> list[bool]:
        """:meth:`deliver` for a batch: one look-up of what was delivered before, then each file
        written and recorded as :meth:`deliver` does."""
        done = self._journal.delivered_among([key for _, _, key in items])
        return [
            False if key in done else self._deliver(notification, recipient, key)
            for notification, recipient, key in items
        ]

    def _deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        document = notification_document(notification, recipient, key, self._config.id)
        data = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        name = file_name(key)
        try:
            created = self._write_once(name, data)
        except OSError as err:  # the error's text names the directory: the kind is reported
            raise DeliveryError(
                f"file channel {self._config.id!r} could not write {key}: "
                f"{type(err).__name__}: {err.strerror or 'failed'}"
            ) from err
        self._journal.record(key, self._records.record(notification, recipient, file=name))
        return created

    def close(self) -> None:
        try:
            if self._wrote:
                fd = os.open(self._directory, os.O_RDONLY)
                try:
                    os.fsync(fd)  # the links themselves survive an OS crash
                finally:
                    os.close(fd)
        finally:
            self._journal.sync()

    def _write_once(self, name: str, data: bytes) -> bool:
        """Write ``data`` to ``name`` unless it exists; False if it did."""
        final = self._directory / name
        if final.exists():
            return False
        self._directory.mkdir(parents=True, exist_ok=True)
        partial = self._directory / f".{name}.{os.getpid()}.{id(self)}.partial"
        with partial.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, final)  # atomic, and refuses to replace: exactly one writer wins
        except FileExistsError:
            return False
        finally:
            partial.unlink()
        self._wrote = True
        return True


def bind(context: ChannelContext) -> ChannelFactory:
    """File channels recording their deliveries in the worker's journal."""

    def open_file(config: ChannelConfig) -> FileChannel:
        settings = settings_of(config, FileSettings)
        return FileChannel(config, settings.directory, context.journal)

    return open_file


CHANNEL = ChannelType("file", FileSettings, bind)

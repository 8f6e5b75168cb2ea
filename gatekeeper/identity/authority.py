"""How a workflow's update validators consult the worker's key directory.

An update validator decides whether a signed request counts: it looks the request's key up in
the worker's own registry (never in anything the request or the release's start input carries).
Validators do not run on replay, so reading live state here cannot make a history
non-deterministic; the handler that applies an accepted request records the key id and the
statement in the audit trail, which is what replay and ``audit verify`` see.

A worker process installs one directory per task queue (:func:`install`) before it polls;
tests that run several workers in one process install one each. This module is passed through
the workflow sandbox (one instance per process), and :func:`lookup` is called inside
``workflow.unsafe.sandbox_unrestricted()``.
"""

from __future__ import annotations

import threading
from typing import Protocol

from gatekeeper.identity.keys import KeyRecord


class KeyDirectory(Protocol):
    """What the validators need from the identity registry."""

    def key(self, key_id: str) -> KeyRecord | None:
        """The registered key with this id, revoked or not, or ``None``."""
        ...


_lock = threading.Lock()
_directories: dict[str, KeyDirectory] = {}


def install(task_queue: str, directory: KeyDirectory) -> None:
    with _lock:
        _directories[task_queue] = directory


def uninstall(task_queue: str, directory: KeyDirectory | None = None) -> None:
    with _lock:
        if directory is None or _directories.get(task_queue) is directory:
            _directories.pop(task_queue, None)


def directory_for(task_queue: str) -> KeyDirectory | None:
    with _lock:
        return _directories.get(task_queue)

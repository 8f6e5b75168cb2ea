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

    def sso_person(self, issuer: str, subject: str) -> str | None:
        """The person an identity admin linked the OIDC identity (issuer, subject) to."""
        ...


_lock = threading.Lock()
_directories: dict[str, KeyDirectory] = {}
#: Task queues whose worker accepts unsigned requests (``[identity] unsigned = "allow"``).
_unsigned_allowed: set[str] = set()


def install(task_queue: str, directory: KeyDirectory, *, unsigned_allowed: bool = False) -> None:
    """Make ``directory`` the key directory of the workflows on ``task_queue``; with
    ``unsigned_allowed`` (the worker's ``[identity] unsigned = "allow"``, local experiments
    only) their validators accept requests without a signature."""
    with _lock:
        _directories[task_queue] = directory
        if unsigned_allowed:
            _unsigned_allowed.add(task_queue)
        else:
            _unsigned_allowed.discard(task_queue)


def uninstall(task_queue: str, directory: KeyDirectory | None = None) -> None:
    with _lock:
        if directory is None or _directories.get(task_queue) is directory:
            _directories.pop(task_queue, None)
            _unsigned_allowed.discard(task_queue)


def unsigned_allowed(task_queue: str) -> bool:
    """Whether the worker on ``task_queue`` accepts unsigned requests (default: no)."""
    with _lock:
        return task_queue in _unsigned_allowed


def directory_for(task_queue: str) -> KeyDirectory | None:
    with _lock:
        return _directories.get(task_queue)

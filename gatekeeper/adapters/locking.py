"""One way to share an append-only file between threads' and processes' writers: ``flock``.

The outbox and the file-backed audit store both append lines to files that several workers may
open at once; each writer holds an exclusive lock from reading what others wrote to writing its
own line, so "is it new?" and "append it" are one step.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def locked(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading and appending (created with its directory if missing), under
    an exclusive ``flock`` until closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield handle

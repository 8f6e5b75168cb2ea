"""One way to share an append-only file between threads' and processes' writers: ``flock``.

The outbox file (a human-readable mirror of a worker's deliveries) is appended to by every
process sharing the data directory; each writer holds an exclusive lock while it writes, so
lines never interleave. Deduplication is not a file's job any more: it is the database's
(:mod:`gatekeeper.adapters.registry.once`).
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

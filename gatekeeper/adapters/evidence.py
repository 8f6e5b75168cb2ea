"""The evidence verifier, embedded default: re-hash local evidence and compare with its digest.

Each item (and the artifact, as id ``artifact``) gets one check:

- ``ok``: the file's sha256 is the recorded one;
- ``mismatch``: it is not (the detail gives both digests);
- ``unreadable``: a file under the evidence roots that cannot be read (missing, no permission);
- ``refused``: the worker's rules forbid reading it: a scheme it does not accept, a path outside
  the evidence roots (after ``..`` and symlinks are resolved), anything but a regular file, a file
  larger than ``max_bytes``, or hashing past the time limit. The detail is one line naming the
  URI and the rule, and nothing about the file: a path outside the roots is refused before
  anything touches the filesystem, so the answer is the same whether the file exists or not;
- ``unverified``: an accepted scheme the worker does not fetch (``https``, ``s3`` …): the worker
  never requests a URL a client named.

A bad item never fails the others: the verifier reports, the workflow decides (``mismatch``,
``unreadable`` and ``refused`` block every gate until an amend fixes them). The roots, schemes and
limits come from the worker's configuration (``[evidence]`` in :mod:`gatekeeper.config`), never
from a client.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from gatekeeper.config import (
    DEFAULT_EVIDENCE_MAX_BYTES,
    DEFAULT_EVIDENCE_SCHEMES,
    DEFAULT_HASH_TIMEOUT_SECONDS,
    EvidenceSettings,
)
from gatekeeper.models.io import EvidenceCheckRequest, EvidenceCheckResult
from gatekeeper.models.spec import ARTIFACT_KEY
from gatekeeper.models.status import EvidenceCheck, EvidenceOutcome

#: Bytes read at a time: large artifacts are hashed without being held in memory.
CHUNK_SIZE = 1 << 20

#: Never follow a symlink in the last component, never block on a FIFO or device, never make a
#: terminal ours. (The path is resolved and checked to be a regular file before it is opened.)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class EvidenceVerifier(Protocol):
    """Checks that evidence still has the digest the release recorded."""

    def verify(
        self, request: EvidenceCheckRequest, progress: Callable[[], None] | None = None
    ) -> EvidenceCheckResult:
        """One check per item, the artifact first; never raises for a single bad item."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Refused(Exception):
    """The rules forbid reading an item; the message is the one-line refusal."""


class _Unreadable(Exception):
    """An item under the roots that could not be read; the message says why."""


def format_bytes(count: int) -> str:
    """``1 GiB``, ``512 MiB``, ``10 KiB`` for whole multiples, else ``1,000 bytes``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale and count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes" if count != 1 else "1 byte"


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


class LocalEvidenceVerifier:
    """Reads ``file://`` URIs under the evidence roots and compares their sha256.

    Args:
        roots: directories whose files may be read. None (the default) means no ``file://``
            URI is read; the worker passes its data directory and the configured roots.
        schemes: URI schemes accepted; ``file`` is read, the others are ``unverified``, and any
            scheme not listed is refused.
        max_bytes: a larger file is refused (checked before reading and while reading).
        hash_timeout: seconds all of one request's items may take to hash.
        chunk_size: bytes read at a time.
        clock: the time checks are stamped with.
        monotonic: the clock the time limit is measured with.
    """

    def __init__(
        self,
        roots: Iterable[Path] = (),
        *,
        schemes: Iterable[str] = DEFAULT_EVIDENCE_SCHEMES,
        max_bytes: int = DEFAULT_EVIDENCE_MAX_BYTES,
        hash_timeout: float = DEFAULT_HASH_TIMEOUT_SECONDS,
        chunk_size: int = CHUNK_SIZE,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        given = [Path(os.path.normpath(Path(root).absolute())) for root in roots]
        #: Resolved once: the operator chose these, so touching them here reveals nothing.
        self._real_roots = tuple(dict.fromkeys(Path(os.path.realpath(root)) for root in given))
        #: What a URI's path is first compared with, before anything touches the filesystem.
        self._lexical_roots = tuple(dict.fromkeys([*given, *self._real_roots]))
        self._schemes = tuple(dict.fromkeys(s.lower() for s in schemes))
        self._max_bytes = max_bytes
        self._hash_timeout = hash_timeout
        self._chunk_size = chunk_size
        self._clock = clock
        self._monotonic = monotonic

    @classmethod
    def from_settings(cls, settings: EvidenceSettings, data_dir: Path) -> LocalEvidenceVerifier:
        """The worker's verifier: the data directory and the configured roots, schemes, limits."""
        return cls(
            [data_dir, *settings.roots],
            schemes=settings.schemes,
            max_bytes=settings.max_bytes,
            hash_timeout=settings.hash_timeout_seconds,
        )

    @property
    def roots(self) -> Sequence[Path]:
        """The evidence roots, symlinks resolved."""
        return self._real_roots

    def verify(
        self, request: EvidenceCheckRequest, progress: Callable[[], None] | None = None
    ) -> EvidenceCheckResult:
        """Check the artifact and every evidence item.

        Args:
            request: the release's artifact and evidence references.
            progress: called after every chunk read (activities heartbeat through it).
        """
        items = [(ARTIFACT_KEY, request.artifact.uri, request.artifact.sha256)]
        items += [(e.id, e.uri, e.sha256) for e in request.evidence]
        deadline = self._monotonic() + self._hash_timeout
        return EvidenceCheckResult(
            checks=[
                self._check(item_id, uri, expected, progress, deadline)
                for item_id, uri, expected in items
            ]
        )

    def _check(
        self,
        item_id: str,
        uri: str,
        expected: str,
        progress: Callable[[], None] | None,
        deadline: float,
    ) -> EvidenceCheck:
        def result(
            outcome: EvidenceOutcome, detail: str = "", actual: str | None = None
        ) -> EvidenceCheck:
            return EvidenceCheck(
                id=item_id,
                uri=uri,
                expected=expected,
                actual=actual,
                result=outcome,
                detail=detail,
                checked_at=self._clock(),
            )

        try:
            path = self._local_path(uri)
            if path is None:
                scheme = urlsplit(uri).scheme.lower()
                return result(
                    "unverified",
                    f"{scheme}: accepted but not fetched (the worker reads only file:// URIs)",
                )
            actual = self._digest(uri, path, progress, deadline)
        except _Refused as refused:
            return result("refused", str(refused))
        except _Unreadable as err:
            return result("unreadable", str(err))
        if actual == expected.lower():
            return result("ok", actual=actual)
        return result("mismatch", f"sha256 is {actual}, expected {expected}", actual)

    def _local_path(self, uri: str) -> Path | None:
        """The resolved file a ``file://`` URI names, or ``None`` for another accepted scheme.

        Raises:
            _Refused: for a scheme not accepted, a malformed file URI, or a path outside the
                roots. The lexical check comes first, so a path outside the roots is refused
                without a single system call on it.
        """
        if not uri.isprintable():
            # urlsplit would silently drop tabs and newlines; the refusal must stay one line.
            shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in uri)
            raise _Refused(f"{shown} contains control characters")
        try:
            parts = urlsplit(uri)
        except ValueError:
            raise _Refused(f"{uri} is not a valid URI") from None
        scheme = parts.scheme.lower()
        if not scheme:
            raise _Refused(f"{uri} has no scheme (local files are file:// URIs)")
        if scheme not in self._schemes:
            accepted = ", ".join(self._schemes) or "none"
            raise _Refused(f"{uri}: scheme '{scheme}' is not accepted (accepted: {accepted})")
        if scheme != "file":
            return None
        if parts.netloc not in ("", "localhost"):
            raise _Refused(f"{uri} names a host; only local files are read")
        if parts.query or parts.fragment:
            raise _Refused(f"{uri} has a query or fragment; a file URI names only a path")
        raw = unquote(parts.path)
        if "\x00" in raw:
            raise _Refused(f"{uri} is not a valid path")
        if not raw.startswith("/"):
            raise _Refused(f"{uri} is not an absolute path")
        outside = _Refused(f"{uri} is outside the evidence roots")
        lexical = Path(os.path.normpath(raw))
        if not _under(lexical, self._lexical_roots):
            raise outside
        # Only now is the filesystem asked: symlinks (and `..` after them) are resolved as the
        # system would, and the real path must still be under a real root.
        real = Path(os.path.realpath(raw))
        if not _under(real, self._real_roots):
            raise outside
        return real

    def _digest(
        self, uri: str, path: Path, progress: Callable[[], None] | None, deadline: float
    ) -> str:
        """The sha256 of a regular file under the roots, within the size and time limits."""
        try:
            before = path.stat()
        except OSError as err:
            raise _Unreadable(f"cannot read {uri}: {err.strerror or err}") from None
        if not stat.S_ISREG(before.st_mode):
            raise _Refused(f"{uri} is not a regular file")
        too_large = _Refused(f"{uri} is larger than {format_bytes(self._max_bytes)}")
        if before.st_size > self._max_bytes:
            raise too_large
        if self._monotonic() > deadline:
            raise _Refused(
                f"{uri} was not hashed: hashing this release's evidence took longer than "
                f"{self._hash_timeout:g} s"
            )
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as err:
            raise _Unreadable(f"cannot read {uri}: {err.strerror or err}") from None
        try:
            if not self._inside(fd):
                raise _Refused(f"{uri} is outside the evidence roots")
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise _Refused(f"{uri} is not a regular file")
            if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
                raise _Unreadable(f"cannot read {uri}: it changed while being opened")
            digest = hashlib.sha256()
            total = 0
            while chunk := os.read(fd, self._chunk_size):
                total += len(chunk)
                if total > self._max_bytes:
                    raise too_large
                digest.update(chunk)
                if progress is not None:
                    progress()
                if self._monotonic() > deadline:
                    raise _Refused(f"hashing {uri} took longer than {self._hash_timeout:g} s")
        except OSError as err:
            raise _Unreadable(f"cannot read {uri}: {err.strerror or err}") from None
        finally:
            os.close(fd)
        return digest.hexdigest()

    def _inside(self, fd: int) -> bool:
        """Whether the open file is still under a root (a directory swapped for a symlink between
        the check and the open is caught here). Without ``/proc`` the earlier check stands."""
        try:
            opened = Path(f"/proc/self/fd/{fd}").readlink()
        except OSError:
            return True
        return _under(Path(str(opened).removesuffix(" (deleted)")), self._real_roots)

"""The evidence verifier, embedded default: re-hash local evidence and compare with its digest.

Each item (and the artifact, as id ``artifact``) gets one check: ``ok``, ``mismatch``,
``unreadable`` (with the reason) or ``unverified`` (a scheme this verifier does not read). A bad
item never fails the others: the verifier reports, the workflow decides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

from gatekeeper.models.io import EvidenceCheckRequest, EvidenceCheckResult
from gatekeeper.models.spec import ARTIFACT_KEY
from gatekeeper.models.status import EvidenceCheck

Outcome = Literal["ok", "mismatch", "unreadable", "unverified"]

#: Bytes read at a time: large artifacts are hashed without being held in memory.
CHUNK_SIZE = 1 << 20


class EvidenceVerifier(Protocol):
    """Checks that evidence still has the digest the release recorded."""

    def verify(
        self, request: EvidenceCheckRequest, progress: Callable[[], None] | None = None
    ) -> EvidenceCheckResult:
        """One check per item, the artifact first; never raises for a single bad item."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LocalEvidenceVerifier:
    """Reads ``file://`` URIs (absolute paths) and compares their sha256.

    Args:
        root: when given, only files under this directory are read; others are ``unreadable``.
        chunk_size: bytes read at a time.
        clock: the time checks are stamped with.
    """

    def __init__(
        self,
        root: Path | None = None,
        chunk_size: int = CHUNK_SIZE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._root = Path(root).resolve() if root is not None else None
        self._chunk_size = chunk_size
        self._clock = clock

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
        return EvidenceCheckResult(
            checks=[self._check(i, uri, expected, progress) for i, uri, expected in items]
        )

    def _check(
        self, item_id: str, uri: str, expected: str, progress: Callable[[], None] | None
    ) -> EvidenceCheck:
        def result(outcome: Outcome, detail: str = "", actual: str | None = None) -> EvidenceCheck:
            return EvidenceCheck(
                id=item_id,
                uri=uri,
                expected=expected,
                actual=actual,
                result=outcome,
                detail=detail,
                checked_at=self._clock(),
            )

        parts = urlsplit(uri)
        if parts.scheme.lower() != "file":
            scheme = parts.scheme or "no scheme"
            return result(
                "unverified",
                f"{scheme}: the embedded verifier reads only file:// URIs (absolute paths)",
            )
        if parts.netloc not in ("", "localhost"):
            return result("unreadable", f"file URI names host {parts.netloc!r}; only local files")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            return result("unreadable", f"{path} is not an absolute path")
        if self._root is not None and not path.resolve().is_relative_to(self._root):
            return result("unreadable", f"{path} is outside the evidence root {self._root}")
        try:
            actual = self._digest(path, progress)
        except OSError as err:
            return result("unreadable", f"cannot read {path}: {err.strerror or err}")
        if actual == expected.lower():
            return result("ok", actual=actual)
        return result("mismatch", f"sha256 is {actual}, expected {expected}", actual)

    def _digest(self, path: Path, progress: Callable[[], None] | None) -> str:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(self._chunk_size):
                digest.update(chunk)
                if progress is not None:
                    progress()
        return digest.hexdigest()

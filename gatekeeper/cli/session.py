"""Helpers the decision commands share: connecting (with a signer), naming releases, dates."""

from __future__ import annotations

import difflib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from gatekeeper.client import connect
from gatekeeper.errors import InputError, ReleaseNotFound
from gatekeeper.ids import RELEASE_PREFIX, release_id_of, release_workflow_id
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.base import parse_duration
from gatekeeper.models.status import ReleaseHead, ReleaseOutcome, ReleaseStatus, UpdateResult
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.signer import Signer
from gatekeeper.temporal_errors import not_found


def signer(settings: Settings, key_file: Path | None = None) -> Signer:
    """Signs each request with its actor's key: ``--key FILE``, else ``<keys_dir>/<person>.pem``
    (a missing key is a one-line error naming ``gatekeeper keys generate --as PERSON``)."""
    return Signer(keys_dir=settings.keys_dir, key_file=key_file)


#: How many release ids "did you mean" compares an unknown one with (newest first).
SUGGEST_AMONG = 2_000


class NamedReleases(Releases):
    """:class:`Releases` that take a release id as people type it.

    The id as the Temporal UI shows it (``release-aurora-2.0.0``, the workflow id) names the
    release ``aurora-2.0.0``, unless a release is really called ``release-aurora-2.0.0``. An id
    no release has is refused before anything is sent, naming the closest existing one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known: dict[str, str] = {}

    async def resolve(self, typed: str) -> str:
        """The release id ``typed`` names.

        Raises:
            ReleaseNotFound: no release has that id (with or without the prefix); the message
                suggests the closest id visibility knows.
        """
        if typed in self._known:
            return self._known[typed]
        candidates = [typed]
        if typed.startswith(RELEASE_PREFIX) and len(typed) > len(RELEASE_PREFIX):
            candidates.append(release_id_of(typed))
        for candidate in candidates:
            try:
                await self.client.get_workflow_handle(release_workflow_id(candidate)).describe()
            except RPCError as err:
                if not_found(err):
                    continue
                return typed  # unreachable, refused: the call itself says so in its words
            self._known[typed] = self._known[candidate] = candidate
            return candidate
        raise ReleaseNotFound(await self._not_found(candidates[-1]))

    async def _not_found(self, release_id: str) -> str:
        known: list[str] = []
        try:
            async for execution in self.client.list_workflows(
                f"WorkflowType = '{WORKFLOW_TYPE}'", limit=SUGGEST_AMONG
            ):
                known.append(release_id_of(execution.id))
        except RPCError:
            pass
        close = difflib.get_close_matches(release_id, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "see `gatekeeper release list`"
        return f"no release '{release_id}' ({hint})"

    def handle(self, release_id: str) -> WorkflowHandle[Any, ReleaseOutcome]:
        return super().handle(self._known.get(release_id, release_id))

    async def status(self, release_id: str) -> ReleaseStatus:
        return await super().status(await self.resolve(release_id))

    async def head(self, release_id: str) -> ReleaseHead:
        return await super().head(await self.resolve(release_id))

    async def audit(self, release_id: str) -> list[AuditEvent]:
        return await super().audit(await self.resolve(release_id))

    async def describe(self, release_id: str) -> WorkflowExecutionStatus | None:
        return await super().describe(await self.resolve(release_id))

    async def _update(self, release_id: str, name: str, request: Any) -> UpdateResult:
        return await super()._update(await self.resolve(release_id), name, request)


@asynccontextmanager
async def releases(
    settings: Settings, key_file: Path | None = None
) -> AsyncIterator[NamedReleases]:
    """A releases client that signs every state-changing request (see :func:`signer`) and reads
    release ids as people type them (see :class:`NamedReleases`)."""
    client = await connect(settings)
    yield NamedReleases(client, settings.task_queue, signer=signer(settings, key_file))


_RELATIVE = re.compile(r"^\+(\d+[wdhms])+$")


def parse_when(value: str, *, now: datetime | None = None, option: str = "date") -> datetime:
    """A date or time from the command line, always timezone-aware (UTC unless it says otherwise).

    Accepts ``2026-12-31`` (midnight UTC), ``2026-12-31T09:30``, ``2026-12-31T09:30:00+01:00`` and
    relative times such as ``+10d`` or ``+1d12h``.
    """
    text = value.strip()
    base = now or datetime.now(UTC)
    if _RELATIVE.match(text):
        delta = parse_duration(text[1:])
        if isinstance(delta, timedelta):
            return base + delta
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{option}: '{value}' is not a date (use 2026-12-31, 2026-12-31T09:30 or +10d)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def key_path(settings: Settings, person: str) -> Path:
    return settings.keys_dir / f"{person}.pem"

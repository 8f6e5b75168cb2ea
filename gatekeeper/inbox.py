"""What waits for one person, oldest wait first: ``gatekeeper review inbox`` and the console's
Inbox page.

Two steps. Visibility finds the candidates cheaply: running releases on this task queue whose
``AwaitingRoles`` holds one of the person's roster roles, or that the person submitted (an amend
may be owed). Then each candidate's ``get_status`` says whether the person can really act now:
the workflow's own list of eligible people already applies separation of duties and drops those
who decided, under the release's policy snapshot, so the inbox never offers a decision the
release would refuse.

Limitation: a role held only through a delegation is not on the roster, so releases waiting for
it are not found here; the delegate sees them with ``gatekeeper release list --awaiting-role``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.service import RPCError

from gatekeeper import search_attributes as sa
from gatekeeper.errors import InputError
from gatekeeper.ids import release_id_of
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.releases import Releases
from gatekeeper.status_view import StatusView, view

#: How long one release may take to answer ``get_status`` before the inbox skips it.
STATUS_TIMEOUT = timedelta(seconds=10)
#: Candidates asked at once.
STATUS_QUERIES = 16


@dataclass(frozen=True)
class InboxItem:
    """One release waiting for the person, and why it is theirs."""

    release_id: str
    model: str
    version: str
    stage: str
    state: str
    what: str
    because: list[str]
    since: datetime
    until: datetime | None
    submitted_by: str
    #: When the open gate escalated (its deadline passed without a decision), if it did.
    escalated_at: datetime | None = None
    #: Reminders the open gate has sent so far.
    reminders_sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "state": self.state,
            "what": self.what,
            "because": self.because,
            "since": rfc3339(self.since),
            "until": rfc3339(self.until) if self.until else None,
            "submitted_by": self.submitted_by,
        }


@dataclass(frozen=True)
class Inbox:
    """What :func:`inbox_for` found: the items, and releases that did not answer in time."""

    items: list[InboxItem]
    unreadable: list[str]


def roster_roles(policy: Policy, person: str) -> list[str]:
    """The person's roles on the policy's roster.

    Raises:
        InputError: the person is not on the roster.
    """
    found = policy.person(person)
    if found is None:
        raise InputError(
            f"--as: '{person}' is not on the roster of policy {policy.policy_id} "
            "(set GATEKEEPER_POLICY or --policy to the policy your releases use)"
        )
    return list(found.roles)


def inbox_query(person: str, roles: Sequence[str], task_queue: str) -> str:
    """The visibility query for candidates: waiting for one of ``roles``, or submitted by them."""
    values = ", ".join(_quote(r) for r in roles)
    waiting = f"{sa.AWAITING_ROLES.name} IN ({values})" if roles else None
    mine = f"{sa.SUBMITTED_BY.name} = {_quote(person)}"
    either = f"({waiting} OR {mine})" if waiting else mine
    return (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND "
        f"TaskQueue = {_quote(task_queue)} AND {either}"
    )


def waits_for(status: ReleaseStatus | StatusView, person: str, roles: Sequence[str]) -> list[str]:
    """Why ``status`` waits for ``person`` (their matching roles, or ``submitter``); empty if not.

    When the release names the people it waits for (an approval gate, an amend), only they
    count: the workflow names exactly those every rule lets approve (``gatekeeper.rules``), so
    not the submitter, authors of covered evidence, anyone who already decided or (with distinct
    approvers) approved another gate. An open gate that names nobody has nobody left who may
    approve. Otherwise (a government window, a held release) holding the role suffices.
    """
    v = status if isinstance(status, StatusView) else view(status)
    waiting = v.waiting
    if waiting is None or v.terminal:
        return []
    if not waiting.people and v.open_gate and not v.active_holds:
        return []  # an open gate that names nobody has nobody left who may approve
    if waiting.people:
        if person not in waiting.people:
            return []
        if not waiting.roles and person == v.submitter:
            return ["submitter"]
    matched = [role for role in waiting.roles if role in roles]
    if matched and waiting.people and v.open_gate and v.open_gate.approved_by(person):
        return []  # the workflow's list is authoritative; this guards a stale one
    return matched


async def inbox_for(api: Releases, policy: Policy, person: str, *, limit: int = 200) -> Inbox:
    """Releases waiting for ``person``, oldest wait first.

    Raises:
        InputError: the person is not on the policy's roster.
    """
    roles = roster_roles(policy, person)
    query = inbox_query(person, roles, api.task_queue)
    candidates: list[str] = []
    async for execution in api.client.list_workflows(query):
        if len(candidates) >= limit:
            break
        candidates.append(release_id_of(execution.id))
    # Each candidate answers its own query; a few at a time (a page of the console waits on
    # them all), the order of the answers does not matter (the items are sorted after).
    gate = asyncio.Semaphore(STATUS_QUERIES)

    async def read(release_id: str) -> ReleaseStatus | None:
        async with gate:
            try:
                status: ReleaseStatus = await api.handle(release_id).query(
                    "get_status", result_type=ReleaseStatus, rpc_timeout=STATUS_TIMEOUT
                )
            except RPCError:
                return None
            return status

    answers = await asyncio.gather(*(read(release_id) for release_id in candidates))
    items: list[InboxItem] = []
    unreadable: list[str] = []
    for release_id, status in zip(candidates, answers, strict=True):
        if status is None:
            unreadable.append(release_id)
            continue
        seen = view(status)
        because = waits_for(seen, person, roles)
        if because:
            items.append(_item(seen, because))
    items.sort(key=lambda item: (item.since, item.release_id))
    return Inbox(items=items, unreadable=unreadable)


def _item(v: StatusView, because: list[str]) -> InboxItem:
    if v.waiting is None:  # waits_for() only names a reason for a release that waits
        raise ValueError(f"release {v.release_id} waits for nothing")
    return InboxItem(
        release_id=v.release_id,
        model=v.model,
        version=v.version,
        stage=v.stage or "",
        state=v.state.value,
        what=v.waiting.what,
        because=because,
        since=v.waiting.since,
        until=v.waiting.until,
        submitted_by=v.submitter,
        escalated_at=v.open_gate.escalated_at if v.open_gate else None,
        reminders_sent=v.open_gate.reminders_sent if v.open_gate else 0,
    )


def rfc3339(value: datetime) -> str:
    """A time as RFC 3339 in UTC (``2026-12-29T22:05:05Z``); a naive time is taken as UTC."""
    aware = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.isoformat().replace("+00:00", "Z")


def _quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise InputError(f"'{value}' may not contain quotes or backslashes")
    return f"'{value}'"

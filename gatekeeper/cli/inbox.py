"""``gatekeeper review inbox``: what waits for one person, oldest wait first.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.service import RPCError

from gatekeeper import search_attributes as sa
from gatekeeper.errors import InputError
from gatekeeper.ids import release_id_of
from gatekeeper.models.policy import Policy
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.releases import WORKFLOW_TYPE, Releases

#: How long one release may take to answer ``get_status`` before the inbox skips it.
STATUS_TIMEOUT = timedelta(seconds=10)


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

    def as_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "state": self.state,
            "what": self.what,
            "because": self.because,
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
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


def waits_for(status: ReleaseStatus, person: str, roles: Sequence[str]) -> list[str]:
    """Why ``status`` waits for ``person`` (their matching roles, or ``submitter``); empty if not.

    When the release names the people it waits for (an approval gate, an amend), only they
    count: the workflow names exactly those every rule lets approve (``gatekeeper.rules``), so
    not the submitter, authors of covered evidence, anyone who already decided or (with distinct
    approvers) approved another gate. An open gate that names nobody has nobody left who may
    approve. Otherwise (a government window, a held release) holding the role suffices.
    """
    awaiting = status.awaiting
    if awaiting is None or status.terminal:
        return []
    if not awaiting.people and _at_open_gate(status):
        return []
    if awaiting.people:
        if person not in awaiting.people:
            return []
        if not awaiting.roles and person == status.spec.submitter:
            return ["submitter"]
    matched = [role for role in awaiting.roles if role in roles]
    if matched and awaiting.people and _decided(status, person):
        return []  # the workflow's list is authoritative; this guards a stale one
    return matched


def _at_open_gate(status: ReleaseStatus) -> bool:
    """Whether the release waits at an open gate for its reviewers (not held: an operator)."""
    gate = status.gates.get(status.stage or "")
    return gate is not None and gate.closed_at is None and not status.active_holds()


def _decided(status: ReleaseStatus, person: str) -> bool:
    gate = status.gates.get(status.stage or "")
    if gate is None or gate.closed_at is not None:
        return False
    return any(person in (d.person, d.on_behalf_of) for d in gate.valid_approvals())


async def inbox_for(api: Releases, policy: Policy, person: str, *, limit: int = 200) -> Inbox:
    """Releases waiting for ``person``, oldest wait first.

    Raises:
        InputError: the person is not on the policy's roster.
    """
    roles = roster_roles(policy, person)
    query = inbox_query(person, roles, api.task_queue)
    items: list[InboxItem] = []
    unreadable: list[str] = []
    count = 0
    async for execution in api.client.list_workflows(query):
        count += 1
        if count > limit:
            break
        release_id = release_id_of(execution.id)
        try:
            status: ReleaseStatus = await api.handle(release_id).query(
                "get_status", result_type=ReleaseStatus, rpc_timeout=STATUS_TIMEOUT
            )
        except RPCError:
            unreadable.append(release_id)
            continue
        because = waits_for(status, person, roles)
        if because:
            items.append(_item(status, because))
    items.sort(key=lambda item: (item.since, item.release_id))
    return Inbox(items=items, unreadable=unreadable)


def _item(status: ReleaseStatus, because: list[str]) -> InboxItem:
    spec = status.spec
    awaiting = status.awaiting
    if awaiting is None:  # waits_for() only names a reason for a release that waits
        raise ValueError(f"release {status.release_id} waits for nothing")
    return InboxItem(
        release_id=status.release_id,
        model=spec.model.name,
        version=spec.model.version,
        stage=status.stage or "",
        state=status.state.value,
        what=awaiting.what,
        because=because,
        since=awaiting.since,
        until=awaiting.until,
        submitted_by=spec.submitter,
    )


def _quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise InputError(f"'{value}' may not contain quotes or backslashes")
    return f"'{value}'"

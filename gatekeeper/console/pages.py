"""The Inbox, Releases and Orders pages: read-only views over the CLI's client API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from gatekeeper.console.auth import SignedInPerson, current_person
from gatekeeper.console.context import context
from gatekeeper.console.views import one_line
from gatekeeper.errors import GatekeeperError
from gatekeeper.inbox import Inbox, inbox_for
from gatekeeper.models.enums import ReleaseState, RiskTier
from gatekeeper.models.orders import OrderStatus
from gatekeeper.orders import OrderSummary
from gatekeeper.release_list import ReleaseSummary, checked_filter

router = APIRouter()

Person = Annotated[SignedInPerson, Depends(current_person)]
#: How the Releases page names its filters in a refusal (the query's field names).
FILTER_NAMES = {
    "stage": "stage",
    "state": "state",
    "risk_tier": "risk",
    "awaiting_role": "awaiting_role",
}
#: Rows the Releases page shows at most; orders the Orders page reads at most.
RELEASE_ROWS = 200
ORDER_ROWS = 100
#: Order statuses queried at once.
ORDER_QUERIES = 8
#: Release states that are outcomes (the release has ended).
OUTCOMES = frozenset(s.value for s in ReleaseState if s.terminal)


@router.get("/")
async def root(person: Person) -> Response:
    return RedirectResponse("/inbox", status_code=303)


@router.get("/inbox")
async def inbox(request: Request, person: Person) -> Response:
    ctx = context(request)
    policy = await ctx.roster()
    found = (
        await inbox_for(ctx.releases, policy, person.id)
        if person.on_roster
        else Inbox(items=[], unreadable=[])
    )
    return ctx.render(
        request,
        "inbox.html",
        {"inbox": found, "policy": policy},
        person=person,
    )


def _field(value: str | None) -> str | None:
    """A filter as the form sends it: empty means unset."""
    if value is None:
        return None
    value = value.strip()
    return value or None


@router.get("/releases")
async def releases(
    request: Request,
    person: Person,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=64)] = None,
    risk: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    awaiting_role: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    ctx = context(request)
    chosen = {
        "stage": _field(stage),
        "state": _field(state),
        "risk": _field(risk),
        "model": _field(model),
        "awaiting_role": _field(awaiting_role),
    }
    rows: list[ReleaseSummary] = []
    problem = ""
    try:
        filters = await asyncio.to_thread(
            checked_filter,
            ctx.settings.gatekeeper,
            stage=chosen["stage"],
            state=chosen["state"],
            model=chosen["model"],
            awaiting_role=chosen["awaiting_role"],
            risk_tier=chosen["risk"],
            names=FILTER_NAMES,
        )
        rows = await ctx.releases.list(filters, limit=RELEASE_ROWS)
    except GatekeeperError as err:
        problem = f"error: {one_line(err)}"
    return ctx.render(
        request,
        "releases.html",
        {
            "rows": rows,
            "chosen": chosen,
            "problem": problem,
            "states": [s.value for s in ReleaseState],
            "risks": [r.value for r in RiskTier],
            "outcomes": OUTCOMES,
            "limit": RELEASE_ROWS,
        },
        person=person,
        status_code=400 if problem else 200,
    )


@dataclass(frozen=True)
class OrderRow:
    """An order on the Orders page: what visibility lists, and its status when it answered."""

    summary: OrderSummary
    status: OrderStatus | None
    problem: str = ""


@router.get("/orders")
async def orders(request: Request, person: Person) -> Response:
    ctx = context(request)
    listed = await ctx.orders.list(limit=ORDER_ROWS)
    gate = asyncio.Semaphore(ORDER_QUERIES)

    async def row(summary: OrderSummary) -> OrderRow:
        async with gate:
            try:
                return OrderRow(summary, await ctx.orders.status(summary.order_id))
            except GatekeeperError as err:
                return OrderRow(summary, None, f"error: {one_line(err)}")

    rows = await asyncio.gather(*(row(s) for s in listed))
    active = [r for r in rows if r.status is None or r.status.state not in ("lifted", "failed")]
    ended = [r for r in rows if r not in active]
    return ctx.render(request, "orders.html", {"active": active, "ended": ended}, person=person)

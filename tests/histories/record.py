"""Record the histories the replay tests run today's workflow code against.

``python -m tests.histories.record NAME...`` records the named scenarios (``--list`` names them;
``all`` records every one) on a fresh dev server, with the worker every test runs
(:func:`tests.helpers.running_worker`), and writes each workflow's history to
``tests/histories/<file>.json``. A scenario may write more than one file: ``access_order``
writes the order's history and that of the release it suspended and restored.

Re-record a history only when a change to workflow code is meant to be incompatible with
running releases (which, once releases run in production, it must not be: use
``workflow.patched()`` instead), or to add a scenario. The histories are the record of what
earlier code did: re-recording one that still replays throws that record away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import (
    AmendRequest,
    ApprovalGateStage,
    DecisionKind,
    DelegationRequest,
    EvidenceKind,
    EvidenceRef,
    GovernmentResponse,
    GovernmentResponseKind,
    OperatorRequest,
    ReleaseState,
)
from gatekeeper.models.messages import DelegationRevocation
from gatekeeper.models.orders import OrderExemptionRequest, OrderLiftRequest, OrderSpec
from gatekeeper.models.partners import PartnerApprovalRequest
from gatekeeper.orders import Orders
from gatekeeper.releases import Releases
from tests import factories, signing
from tests.helpers import adapters_for, running_worker, start_dev_server
from tests.orders.conftest import PEOPLE, OrderHarness, partner_policy, release_spec

HERE = Path(__file__).resolve().parent
TASK_QUEUE = "histories"
AnyHandle = WorkflowHandle[Any, Any]

#: A scenario drives workflows on the harness and names the file each history goes to.
Scenario = Callable[[OrderHarness], Awaitable[dict[str, AnyHandle]]]


async def launched(h: OrderHarness) -> dict[str, AnyHandle]:
    """Every stage, a refused self-approval, changes requested and amended, a concern, a delay."""
    return {"launched": await drive_to_launch(h, "history-launched")}


async def cost_patch(h: OrderHarness) -> dict[str, AnyHandle]:
    """Issue 16 (release-costs-what-it-must): ``launched`` under the patch that batches a
    task's notices into one activity and upserts search attributes once per task."""
    return {"cost_patch": await drive_to_launch(h, "history-cost-patch")}


async def drive_to_launch(h: OrderHarness, rid: str) -> AnyHandle:
    """The ``launched`` scenario for release ``rid``."""
    api = h.releases
    await h.start(factories.spec(rid), factories.policy())
    await h.at_stage(rid, "internal_review")
    with contextlib.suppress(DecisionRefused):
        await h.approve(rid, factories.AUTHOR, "safety")
    await h.approve(rid, "sam.safety", "safety")
    await api.decide(
        rid, DecisionKind.REQUEST_CHANGES, factories.decision("lee.legal", "legal", comment="card")
    )
    card = EvidenceRef(
        id="system-card",
        kind=EvidenceKind.SYSTEM_CARD,
        uri="https://e.example/c2",
        sha256=factories.sha("c2"),
    )
    await api.amend(rid, AmendRequest(by=factories.SUBMITTER, evidence=[card]))
    await h.pass_internal_review(rid)
    status = await h.at_stage(rid, "government_testing_window")
    await api.respond(
        rid,
        GovernmentResponse(
            by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RAISED, concern="finding"
        ),
    )
    status = await api.status(rid)
    assert status.government.window_ends_at is not None
    await api.respond(
        rid,
        GovernmentResponse(
            by=factories.LIAISON,
            kind=GovernmentResponseKind.DELAY_REQUESTED,
            delay_until=status.government.window_ends_at + timedelta(days=2),
        ),
    )
    await h.skip(rid, 10)
    await api.respond(
        rid, GovernmentResponse(by=factories.LIAISON, kind=GovernmentResponseKind.CONCERN_RESOLVED)
    )
    await h.skip(rid, 23)
    await h.until(rid, lambda s: s.stage == "vetted_partner_access" and s.grants)
    await h.skip(rid, 15)
    await h.until(rid, lambda s: s.awaiting and "security" in s.awaiting.roles)
    await h.approve(rid, "sec.two", "security")
    await h.at_stage(rid, "launch_approval")
    await api.operate(rid, "hold", OperatorRequest(by=factories.OPERATOR, reason="press embargo"))
    await api.operate(
        rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="embargo lifted")
    )
    await h.approve(rid, "eve.exec", "executive")
    await h.handle(rid).result()
    return h.handle(rid)


async def rejected(h: OrderHarness) -> dict[str, AnyHandle]:
    rid = "history-rejected"
    await h.start(factories.spec(rid))
    await h.at_stage(rid, "internal_review")
    await h.releases.decide(
        rid, DecisionKind.REJECT, factories.decision("lee.legal", "legal", comment="no")
    )
    await h.handle(rid).result()
    return {"rejected": h.handle(rid)}


async def withdrawn(h: OrderHarness) -> dict[str, AnyHandle]:
    rid = "history-withdrawn"
    await h.start(factories.spec(rid))
    await h.at_stage(rid, "internal_review")
    await h.pass_internal_review(rid)
    await h.until(rid, lambda s: s.stage == "government_testing_window")
    await h.skip(rid, 31)
    await h.until(rid, lambda s: s.grants)
    await h.releases.operate(
        rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="found a flaw")
    )
    await h.handle(rid).result()
    return {"withdrawn": h.handle(rid)}


async def access_order(h: OrderHarness) -> dict[str, AnyHandle]:
    """An order covering everyone suspends a release in partner access; an exemption is added,
    the order is lifted, access is restored and the release launches. (Recorded with a
    ``foreign_persons`` order, before such orders were enforced per person, issue 14.)"""
    model, rid, order_id = "history-aurora", "history-suspended", "history-order"
    await h.start(release_spec(model, rid), partner_policy())
    await h.parked(rid)
    order = OrderSpec.model_validate(
        {"order_id": order_id, "models": [model], "scope": "everyone", "reason": "export"}
    )
    await h.orders.apply(order, factories.OPERATOR)
    await h.until(rid, lambda s: s.state is ReleaseState.SUSPENDED, what="suspended")
    await h.orders.exempt(
        order_id,
        OrderExemptionRequest(by=factories.OPERATOR, partners=["brit-ai"], reason="licensed"),
    )
    await h.orders.lift(
        order_id, OrderLiftRequest(by=factories.OPERATOR, safeguards=[], reason="review done")
    )
    await h.until(rid, lambda s: s.state is ReleaseState.ACTIVE, what="restored")
    await h.orders.handle(order_id).result()
    await h.skip(rid, 15)
    await h.handle(rid).result()
    return {"access_order": h.orders.handle(order_id), "suspended_restored": h.handle(rid)}


async def per_person_order(h: OrderHarness) -> dict[str, AnyHandle]:
    """A foreign_persons order on two models reaches a release in its testing window (enforced
    per person: it is recorded, and the release goes on to grant while the order stands); a
    one-model exemption sweeps only that model; the lift restores; the release launches
    (issue 14)."""
    model, other = "history-boreal", "history-cirrus"
    rid, order_id = "history-per-person", "history-per-person-order"
    await h.start(release_spec(model, rid), factories.policy(partner_quorum=False))
    await h.pass_internal_review(rid)
    await h.at_stage(rid, "government_testing_window")
    order = OrderSpec.model_validate(
        {
            "order_id": order_id,
            "models": [model, other],
            "scope": "foreign_persons",
            "reason": "export",
        }
    )
    await h.orders.apply(order, factories.OPERATOR)
    await h.until(rid, lambda s: bool(s.orders_in_force()), what="the order recorded")
    await h.skip(rid, 31)
    await h.parked(rid)  # granted while the order stands
    await h.orders.exempt(
        order_id,
        OrderExemptionRequest(
            by=factories.OPERATOR, partners=["brit-ai"], models=[model], reason="licensed"
        ),
    )
    await h.until(
        rid, lambda s: s.orders_in_force()[0].exempt_partners == ["brit-ai"], what="exempted"
    )
    await h.orders.lift(
        order_id, OrderLiftRequest(by=factories.OPERATOR, safeguards=[], reason="review done")
    )
    await h.until(rid, lambda s: not s.orders_in_force(), what="the order lifted")
    await h.orders.handle(order_id).result()
    await h.skip(rid, 15)
    await h.at_stage(rid, "launch_approval")
    await h.approve(rid, "eve.exec", "executive")
    await h.handle(rid).result()
    return {"per_person_order": h.handle(rid), "exemption_sweep": h.orders.handle(order_id)}


async def partner_approval(h: OrderHarness) -> dict[str, AnyHandle]:
    """The government approves partners entry by entry (``government_approves_partners``): two
    approved, one denied; the period starts when the list settles; the release launches."""
    rid = "history-partner-approval"
    policy = partner_policy(timedelta(days=2), government_approves_partners=True)
    await h.start(release_spec("history-borealis", rid), policy)
    await h.until(
        rid,
        lambda s: s.awaiting is not None and "government's decision" in s.awaiting.what,
        what="the government's decision on partners",
    )
    for body in (
        {"by": factories.LIAISON, "partners": ["acme-labs"], "decision": "approve"},
        {
            "by": factories.LIAISON,
            "partners": ["invited-co"],
            "decision": "deny",
            "reason": "not vetted",
        },
        {
            "by": factories.LIAISON,
            "partners": ["brit-ai"],
            "decision": "approve",
            "reference": "L-7",
        },
    ):
        await h.releases.approve_partners(rid, PartnerApprovalRequest.model_validate(body))
    await h.until(rid, lambda s: len(s.grants) == 2, what="two partners granted")
    await h.skip(rid, 3)
    await h.handle(rid).result()
    return {"partner_approval": h.handle(rid)}


async def delegation(h: OrderHarness) -> dict[str, AnyHandle]:
    """A reviewer lends a role that is used and then expires; another lends one and takes it
    back; the gate closes on the delegate's approval and the release runs to launch."""
    rid = "history-delegation"
    await h.start(factories.spec(rid), factories.policy())
    await h.at_stage(rid, "internal_review")
    soon = datetime.now(UTC) + timedelta(days=3)
    await h.releases.delegate(
        rid,
        DelegationRequest(by="lee.legal", to="sec.two", role="legal", until=soon, reason="leave"),
    )
    await h.releases.delegate(
        rid, DelegationRequest(by="sam.safety", to="eve.exec", role="safety", until=soon)
    )
    await h.releases.revoke_delegation(
        rid, DelegationRevocation(by="sam.safety", to="eve.exec", role="safety", reason="back")
    )
    await h.approve(rid, "sec.two", "legal")
    await h.approve(rid, "sam.safety", "safety")
    await h.approve(rid, "sec.one", "security")
    await h.at_stage(rid, "government_testing_window")
    await h.skip(rid, 31)
    await h.at_stage(rid, "vetted_partner_access")
    await h.launch_from_partner_access(rid)
    return {"delegation": h.handle(rid)}


async def reminders(h: OrderHarness) -> dict[str, AnyHandle]:
    """A gate that waits reminds the roles it awaits, escalates, and rejects at its deadline."""
    rid = "history-reminders"
    gate = ApprovalGateStage(
        id="internal_review",
        quorum=factories.REVIEW_QUORUM,
        reminder_every=timedelta(days=2),
        escalate_after=timedelta(days=3),
        deadline=timedelta(days=6),
        on_deadline="reject",
    )
    policy = factories.policy(stages=[gate, *factories.policy().stages[1:]])
    await h.start(factories.spec(rid), policy)
    await h.at_stage(rid, "internal_review")
    await h.approve(rid, "sam.safety", "safety")
    await h.skip(rid, 2.5)
    await h.until(rid, lambda s: s.gates["internal_review"].reminders_sent == 1, what="reminder")
    await h.skip(rid, 1)
    await h.until(
        rid, lambda s: s.gates["internal_review"].escalated_at is not None, what="escalation"
    )
    await h.skip(rid, 3)
    await h.handle(rid).result()
    return {"reminders": h.handle(rid)}


async def held_window(h: OrderHarness) -> dict[str, AnyHandle]:
    """Issue 14's patches: a refusal shown in the timeline, a hold in the window (awaiting the
    operator), responses that keep the window's one timer, a delay that moves it, an early
    clearance, a hold in the partner period, the launch (ReleaseOutcome)."""
    api = h.releases
    rid = "history-held-window"
    liaison = factories.LIAISON
    await h.start(factories.spec(rid), factories.policy())
    await h.at_stage(rid, "internal_review")
    with contextlib.suppress(DecisionRefused):
        await h.approve(rid, factories.SUBMITTER, "safety")
    await h.pass_internal_review(rid)
    status = await h.at_stage(rid, "government_testing_window")
    ends = status.government.window_ends_at
    assert ends is not None
    hold = OperatorRequest(by=factories.OPERATOR, reason="export-control review")
    await api.operate(rid, "hold", hold)
    await h.until(rid, lambda s: s.awaiting and "operator" in s.awaiting.roles, what="held")
    await api.respond(
        rid,
        GovernmentResponse(by=liaison, kind=GovernmentResponseKind.CONCERN_RAISED, concern="leak"),
    )
    await api.respond(
        rid, GovernmentResponse(by=liaison, kind=GovernmentResponseKind.CONCERN_RESOLVED)
    )
    earlier = GovernmentResponse(
        by=liaison, kind=GovernmentResponseKind.DELAY_REQUESTED, delay_until=ends - timedelta(1)
    )
    await api.respond(rid, earlier)
    await api.operate(rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="cleared"))
    later = GovernmentResponse(
        by=liaison, kind=GovernmentResponseKind.DELAY_REQUESTED, delay_until=ends + timedelta(2)
    )
    await api.respond(rid, later)
    await h.skip(rid, 5)
    await api.respond(rid, GovernmentResponse(by=liaison, kind=GovernmentResponseKind.CLEARED))
    await h.until(rid, lambda s: s.stage == "vetted_partner_access" and s.grants)
    await api.operate(rid, "hold", hold)
    await h.until(rid, lambda s: s.awaiting and s.awaiting.roles == ["operator"], what="held")
    await api.operate(rid, "resume", OperatorRequest(by=factories.OPERATOR, reason="cleared"))
    await h.skip(rid, 15)
    await h.until(rid, lambda s: s.awaiting and "security" in s.awaiting.roles)
    await h.approve(rid, "sec.two", "security")
    await h.at_stage(rid, "launch_approval")
    await h.approve(rid, "eve.exec", "executive")
    await h.handle(rid).result()
    return {"held_window": h.handle(rid)}


async def late_release(h: OrderHarness) -> dict[str, AnyHandle]:
    """Issue 14 (release-finds-orders, lift-sweeps-late-releases): a release started after an
    everyone order's sweeps finds the order in the registry itself and is held before granting;
    the lift's own sweep finds it and restores it; it grants, its period passes, it launches."""
    model = "history-late"
    rid, order_id = "history-late-release", "history-late-order"
    order = OrderSpec.model_validate(
        {"order_id": order_id, "models": [model], "scope": "everyone", "reason": "export"}
    )
    await h.orders.apply(order, factories.OPERATOR)
    await h.start(release_spec(model, rid), partner_policy())
    await h.until(
        rid,
        lambda s: s.awaiting is not None and "to grant partner access" in s.awaiting.what,
        what="held before granting",
    )
    await h.orders.lift(
        order_id, OrderLiftRequest(by=factories.OPERATOR, safeguards=[], reason="review done")
    )
    await h.orders.handle(order_id).result()
    await h.parked(rid)
    await h.skip(rid, 15)
    await h.handle(rid).result()
    return {"late_release": h.handle(rid), "late_order_lift": h.orders.handle(order_id)}


SCENARIOS: dict[str, Scenario] = {
    s.__name__: s
    for s in (
        launched,
        rejected,
        withdrawn,
        access_order,
        per_person_order,
        partner_approval,
        delegation,
        reminders,
        held_window,
        late_release,
        cost_patch,
    )
}


async def record(names: list[str]) -> None:
    env = await start_dev_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            adapters = adapters_for(TASK_QUEUE, data_dir)
            for person in PEOPLE:
                adapters.registry.add_person(person)
            factories.install_policy(adapters.policies, factories.policy(), default=True)
            async with running_worker(env.client, TASK_QUEUE, adapters, orders=True, threads=16):
                harness = OrderHarness(
                    env,
                    Releases(env.client, TASK_QUEUE, signer=signing.signer()),
                    adapters,
                    data_dir,
                    Orders(env.client, TASK_QUEUE, signer=signing.signer()),
                )
                for name in names:
                    for stem, handle in (await SCENARIOS[name](harness)).items():
                        history = await handle.fetch_history()
                        path = HERE / f"{stem}.json"
                        text = json.dumps(json.loads(history.to_json()), indent=1) + "\n"
                        path.write_text(text)
                        print(f"recorded {path.name}: {len(history.events)} events")
            adapters.close()
    finally:
        await env.shutdown()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.histories.record", description=__doc__)
    parser.add_argument("names", nargs="*", help="scenarios to record, or 'all'")
    parser.add_argument("--list", action="store_true", help="name the scenarios and stop")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name, scenario in SCENARIOS.items():
            print(f"{name}: {(scenario.__doc__ or '').splitlines()[0] if scenario.__doc__ else ''}")
        return 0 if args.list else 2
    names = list(SCENARIOS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; --list names them")
    asyncio.run(record(names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

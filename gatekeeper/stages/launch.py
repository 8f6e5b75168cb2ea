"""``launch``: publish the model on its surfaces; the release is then ``launched``.

Waits while the release is held or suspended, or a government concern is open. There is at most
one launch stage and it is the last.
"""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.state import OPERATOR, SYSTEM, Ledger
from gatekeeper.models.enums import ReleaseState, StageKind
from gatekeeper.models.io import LaunchReceipt, LaunchRequest
from gatekeeper.models.policy import LaunchStage, Stage
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec


async def run(host: StageHost, stage: LaunchStage) -> str:
    ledger = host.ledger
    spec = ledger.spec
    await host.find_orders("before launching")
    while not ledger.is_terminal():
        ledger.expire_holds(host.now())
        blockers = launch_blockers(ledger)
        if not blockers:
            break
        # Held, it awaits an operator (the blockers name the hold): see Ledger.await_.
        held = ledger.operators_awaited and ledger.is_held()
        ledger.await_(
            f"launch is blocked: {'; '.join(blockers)}",
            host.now(),
            roles=[OPERATOR] if held else None,
        )
        host.commit()
        await host.sleep_until_change({"Hold ends": ledger.next_hold_expiry()})
    if ledger.is_terminal():
        return "ended"
    approvers = sorted(
        {
            d.on_behalf_of or d.person
            for gate in ledger.status.gates.values()
            for d in gate.valid_approvals()
        }
    )
    ledger.await_("the launch to be published", host.now())
    host.set_launching(True)
    host.commit()
    try:
        receipt = await host.execute(
            "publish_launch",
            LaunchRequest(
                idempotency_key=f"{spec.release_id}:{stage.id}:launch",
                release_id=spec.release_id,
                model=spec.model,
                artifact=spec.artifact,
                surfaces=stage.surfaces,
                approved_by=approvers,
                requested_at=host.now(),
            ),
            LaunchReceipt,
            summary=f"Publish {spec.model.name} {spec.model.version} ({', '.join(stage.surfaces)})",
        )
    finally:
        host.set_launching(False)
    launched(ledger, receipt.launch_id, host.now(), stage)
    host.commit()
    return f"published as {receipt.launch_id}"


# --- transitions -----------------------------------------------------------------------------


def launch_blockers(ledger: Ledger) -> list[str]:
    status = ledger.status
    blockers = [f"held: {h.reason}" for h in status.active_holds()]
    blockers.extend(f"suspended by order {s.order_id}" for s in status.active_suspensions())
    blockers.extend(f"open government concern {c.id}" for c in status.government.open_concerns())
    return blockers


def launched(ledger: Ledger, launch_id: str, now: datetime, stage: Stage) -> None:
    ledger.finish_stage(stage, now, f"published as {launch_id}")
    ledger.end(ReleaseState.LAUNCHED, now, f"published as {launch_id}", SYSTEM)
    ledger.notify_end(ReleaseState.LAUNCHED, now, f"published as {launch_id}")


# --- policy checks ---------------------------------------------------------------------------


def check(ctx: CheckContext, index: int, stage: LaunchStage) -> bool:
    del stage
    stages = ctx.policy.stages
    launches = [i for i, s in enumerate(stages) if isinstance(s, LaunchStage)]
    if index != launches[0]:
        message = f"only one launch stage is allowed (stages[{launches[0]}] is one)"
        ctx.add(("stages", index), message)
    elif index != len(stages) - 1:
        ctx.add(("stages", index), "the launch stage must be the last stage")
    return True


def leaves_when(stage: LaunchStage) -> str:
    return f"published on {', '.join(stage.surfaces)}"


SPEC = StageKindSpec(
    kind=StageKind.LAUNCH,
    model=LaunchStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)

"""``waiting_period``: a fixed cooling-off wait before the next stage.

Nothing is decided and nobody is asked: the stage ends ``duration`` after it started. It honours
holds: the wait's clock is fixed (a hold does not stretch it), but the stage does not end while
the release is held; a hold that outlasts the wait keeps the release here until it is lifted
(or its ``until`` passes). While it waits, the status says when it ends: what the release awaits
(``awaiting.until``), the stage's note, and the ``waiting_started`` audit event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import StageKind
from gatekeeper.models.policy import WaitingPeriodStage
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec, show
from gatekeeper.text import when

#: The longest cooling-off wait a policy may set.
MAX_WAITING_PERIOD = timedelta(days=365)


async def run(host: StageHost, stage: WaitingPeriodStage) -> str:
    ledger = host.ledger
    ends = start_wait(ledger, stage, host.now())
    host.commit()
    while True:
        now = host.now()
        ledger.expire_holds(now)
        if ledger.is_terminal():
            return "ended"
        if now >= ends and not ledger.is_held():
            note = end_wait(ledger, stage, ends, now)
            host.commit()
            return note
        await_wait(ledger, stage, ends, now)
        host.commit()
        await host.sleep_until_change(
            {
                f"Waiting period of {stage.id}": ends if now < ends else None,
                "Hold ends": ledger.next_hold_expiry(),
            }
        )


# --- transitions -----------------------------------------------------------------------------


def start_wait(ledger: Ledger, stage: WaitingPeriodStage, now: datetime) -> datetime:
    """Start the wait; return when it ends."""
    ends = now + stage.duration
    record = ledger.status.stage_record(stage.id)
    if record is not None:
        record.note = f"waiting until {when(ends)}"
    ledger.audit(
        now,
        SYSTEM,
        "waiting_started",
        {"ends_at": when(ends), "duration": format_duration(stage.duration)},
        stage=stage.id,
    )
    await_wait(ledger, stage, ends, now)
    return ends


def await_wait(ledger: Ledger, stage: WaitingPeriodStage, ends: datetime, now: datetime) -> None:
    """What the release awaits: the end of the wait, or (held) an operator to resume it."""
    holds = ledger.status.active_holds()
    if holds:
        state = "ends" if now < ends else "ended"
        ledger.await_(
            f"the release to resume at {stage.id} ({'; '.join(h.reason for h in holds)}); "
            f"the waiting period {state} {when(ends)}",
            now,
            roles=["operator"],
            until=min((h.until for h in holds if h.until), default=None),
        )
        return
    why = f": {stage.reason}" if stage.reason else ""
    ledger.await_(f"the waiting period of {stage.id} (ends {when(ends)}){why}", now, until=ends)


def end_wait(ledger: Ledger, stage: WaitingPeriodStage, ends: datetime, now: datetime) -> str:
    """The wait is over (and the release is not held): the stage may finish."""
    ledger.audit(now, SYSTEM, "waiting_ended", {"ends_at": when(ends)}, stage=stage.id)
    return f"waited {format_duration(stage.duration)} (until {when(ends)})"


# --- policy checks and description -----------------------------------------------------------


def check(ctx: CheckContext, index: int, stage: WaitingPeriodStage) -> bool:
    path = ("stages", index, "duration")
    if stage.duration <= timedelta(0):
        ctx.add(path, f"must be longer than zero (got {show(stage.duration)})")
    elif stage.duration > MAX_WAITING_PERIOD:
        limit = MAX_WAITING_PERIOD.days
        ctx.add(path, f"must be at most {limit} days (got {show(stage.duration)})")
    return True


def leaves_when(stage: WaitingPeriodStage) -> str:
    why = stage.reason or "a cooling-off wait: nothing to decide"
    return f"{format_duration(stage.duration)} pass ({why}); a hold keeps it from ending"


SPEC = StageKindSpec(
    kind=StageKind.WAITING_PERIOD,
    model=WaitingPeriodStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)

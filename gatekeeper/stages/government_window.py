"""``government_window``: the government may test the model before anyone else gets it.

The window lasts its ``duration`` (extended by government delays), may end early when the
liaison records ``cleared`` (``allow_early_clearance``), and never ends while a government concern
is open or the release is held. The liaison's records themselves are decisions
(:mod:`gatekeeper.ledger.government`); they call :func:`window_stage` and :func:`await_window`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import NotificationEvent, StageKind
from gatekeeper.models.policy import (
    MAX_GOVERNMENT_WINDOW,
    GovernmentSubmissionStage,
    GovernmentWindowStage,
)
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec, show
from gatekeeper.text import when
from gatekeeper.yamlfile import FieldPath


async def run(host: StageHost, stage: GovernmentWindowStage) -> str:
    ledger = host.ledger
    open_window(ledger, stage, host.now())
    host.commit()
    days = stage.duration.total_seconds() / 86400
    label = (
        f"{days:g}-day government testing window"
        if days >= 1
        else (f"{stage.duration.total_seconds():g}-second government testing window (demo clock)")
    )
    while True:
        now = host.now()
        ledger.expire_holds(now)
        if ledger.is_terminal():
            return "ended"
        may_end, _ = window_blockers(ledger, stage, now)
        if may_end:
            reason = close_window(ledger, now)
            host.commit()
            return reason
        await_window(ledger, stage, now)
        host.commit()
        ends = ledger.status.government.window_ends_at
        await host.sleep_until_change(
            {
                label: ends if ends and ends > now else None,
                "Hold ends": ledger.next_hold_expiry(),
            }
        )


# --- transitions -----------------------------------------------------------------------------


def window_stage(ledger: Ledger) -> GovernmentWindowStage | None:
    """The release's government window stage, if one applies to it."""
    for stage in ledger.policy.stages:
        if isinstance(stage, GovernmentWindowStage) and ledger.applies(stage):
            return stage
    return None


def open_window(ledger: Ledger, stage: GovernmentWindowStage, now: datetime) -> None:
    gov = ledger.status.government
    gov.window_opened_at = now
    gov.window_original_ends_at = now + stage.duration
    gov.window_ends_at = now + stage.duration
    event = ledger.audit(
        now,
        SYSTEM,
        "window_opened",
        {"ends_at": when(gov.window_ends_at), "days": stage.duration / timedelta(days=1)},
    )
    ledger.notify(
        NotificationEvent.WINDOW_OPENED,
        event,
        f"Government testing window opened for {ledger.title}",
        f"The government may test {ledger.title} until {when(gov.window_ends_at)}. The release "
        "does not go to partners or the public before the window ends"
        + (" or the government clears it." if stage.allow_early_clearance else "."),
        action_needed="Record the government's responses with `gatekeeper gov respond`.",
        due=gov.window_ends_at,
        roles=["government_liaison"],
    )
    await_window(ledger, stage, now)


def window_blockers(
    ledger: Ledger, stage: GovernmentWindowStage, now: datetime
) -> tuple[bool, list[str]]:
    """(may the window end now?, what still blocks it)."""
    gov = ledger.status.government
    blockers = [f"open concern {c.id}: {c.text}" for c in gov.open_concerns()]
    blockers.extend(f"held: {h.reason}" for h in ledger.status.active_holds())
    cleared = gov.cleared_at is not None and stage.allow_early_clearance
    elapsed = gov.window_ends_at is not None and now >= gov.window_ends_at
    return (cleared or elapsed) and not blockers, blockers


def await_window(ledger: Ledger, stage: GovernmentWindowStage, now: datetime) -> None:
    del stage
    gov = ledger.status.government
    concerns = gov.open_concerns()
    if concerns:
        what = f"government concern {concerns[0].id} to be resolved"
    else:
        what = f"the government testing window (ends {when(gov.window_ends_at)})"
    ledger.await_(what, now, roles=["government_liaison"], until=gov.window_ends_at)


def close_window(ledger: Ledger, now: datetime) -> str:
    gov = ledger.status.government
    gov.window_closed_at = now
    if gov.cleared_at is not None and gov.window_ends_at and now < gov.window_ends_at:
        reason = f"cleared early by {gov.cleared_by} at {when(gov.cleared_at)}"
    else:
        reason = f"window elapsed at {when(gov.window_ends_at)}"
    event = ledger.audit(now, SYSTEM, "window_ended", {"reason": reason})
    ledger.notify(
        NotificationEvent.WINDOW_ENDED,
        event,
        f"Government testing window ended for {ledger.title}",
        f"The window ended ({reason}). Ending the window permits the next stage; it is "
        "not a government approval.",
        roles=["government_liaison"],
        concerned=[ledger.spec.submitter],
    )
    return reason


# --- policy checks ---------------------------------------------------------------------------


def check(ctx: CheckContext, index: int, stage: GovernmentWindowStage) -> bool:
    path: FieldPath = ("stages", index)
    submitted = {
        designation
        for earlier in ctx.policy.stages[:index]
        if isinstance(earlier, GovernmentSubmissionStage)
        for designation in earlier.applies_to
    }
    missing = [d.value for d in stage.applies_to if d not in submitted]
    if missing:
        message = (
            f"runs for {', '.join(missing)} releases, but no earlier government_submission stage "
            "does: the government must receive the model before its testing window opens"
        )
        ctx.add((*path, "applies_to"), message)
    if stage.duration <= timedelta(0):
        ctx.add((*path, "duration"), f"must be longer than zero (got {show(stage.duration)})")
    elif stage.duration > MAX_GOVERNMENT_WINDOW:
        limit = MAX_GOVERNMENT_WINDOW.days
        ctx.add((*path, "duration"), f"must be at most {limit} days (got {show(stage.duration)})")
    if stage.max_delay < timedelta(0):
        ctx.add((*path, "max_delay"), f"must not be negative (got {show(stage.max_delay)})")
    return True


# --- description -----------------------------------------------------------------------------


def leaves_when(stage: GovernmentWindowStage) -> str:
    text = f"{format_duration(stage.duration)} pass"
    if stage.allow_early_clearance:
        text += ", or the liaison records 'cleared'"
    return (
        f"{text}; delays may extend it up to {format_duration(stage.max_delay)} past its "
        "original end; an open concern blocks it"
    )


SPEC = StageKindSpec(
    kind=StageKind.GOVERNMENT_WINDOW,
    model=GovernmentWindowStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)

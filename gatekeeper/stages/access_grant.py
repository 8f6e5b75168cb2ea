"""``access_grant``: vetted partners get the model, for a minimum period, before the public.

Grants the release's requested cohorts this stage allows (all at once, or entry by entry as the
government liaison approves the proposed partners), waits the minimum period, then, if the stage
has a quorum, runs the same gate as an ``approval_gate`` (:func:`~gatekeeper.stages.approval_gate.run_gate`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import NotificationEvent, StageKind
from gatekeeper.models.io import GRANT_SAMPLE, GrantRequest, GrantResult
from gatekeeper.models.partners import EligiblePartners, EligiblePartnersRequest
from gatekeeper.models.policy import AccessGrantStage, Cohort
from gatekeeper.stages import approval_gate
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec, show
from gatekeeper.text import when
from gatekeeper.yamlfile import FieldPath, did_you_mean


async def run(host: StageHost, stage: AccessGrantStage) -> str:
    ledger = host.ledger
    spec = ledger.spec
    # A release started after an order's sweeps learns the order here, and is held as one the
    # order reached (the registry alone would only start its grants suspended).
    await host.find_orders("before granting partner access")
    await host.until_unblocked(f"to grant partner access at {stage.id}", suspended_blocks=True)
    if ledger.is_terminal():
        return "ended"
    allowed = set(stage.cohorts) if stage.cohorts else {c.id for c in ledger.policy.cohorts}
    cohorts = [c for c in ledger.policy.cohorts if c.id in allowed and c.id in spec.partner_cohorts]
    if stage.government_approves_partners:
        # Granted entry by entry as the government approves; the period starts when settled.
        result = await grant_approved_partners(host, stage, cohorts)
        if ledger.is_terminal():
            return "ended"
    else:
        ledger.await_("partner access grants from the registry", host.now())
        host.commit()
        result = await host.execute(
            "grant_partner_access",
            grant_request(ledger, stage, cohorts, "grant", host.now()),
            GrantResult,
            summary=f"Grant early access to {', '.join(c.id for c in cohorts) or 'no cohort'}",
        )
        # Recorded even if the release was withdrawn meanwhile, so the cleanup revokes them.
        record_grants(ledger, result, stage, host.now())
        host.commit()
    period_ends = host.now() + stage.minimum_period
    while not ledger.is_terminal() and host.now() < period_ends:
        ledger.expire_holds(host.now())
        ledger.await_(
            f"the minimum partner period (ends {when(period_ends)})",
            host.now(),
            until=period_ends,
        )
        host.commit()
        await host.sleep_until_change(
            {
                f"Minimum partner period of {stage.id}": period_ends,
                "Hold ends": ledger.next_hold_expiry(),
            }
        )
    if ledger.is_terminal():
        return "ended"
    partners = result.partner_count
    if stage.quorum:
        note = await approval_gate.run_gate(host, stage, stage)
        return f"{partners} partner(s) granted; {note}"
    return f"{partners} partner(s) granted"


async def grant_approved_partners(
    host: StageHost, stage: AccessGrantStage, cohorts: list[Cohort]
) -> GrantResult:
    """Propose the eligible partners, grant each batch the liaison approves, until every
    entry is decided (the list is settled). Denied partners are never granted."""
    ledger = host.ledger
    spec = ledger.spec
    ledger.await_("the eligible partner list from the registry", host.now())
    host.commit()
    eligible = await host.execute(
        "list_eligible_partners",
        EligiblePartnersRequest(release_id=spec.release_id, cohorts=cohorts, regions=spec.regions),
        EligiblePartners,
        summary=f"List partners eligible for {', '.join(c.id for c in cohorts) or 'no cohort'}",
    )
    partners = host.partners.propose_partners(stage, eligible, host.now())
    host.commit()
    granted = GrantResult(skipped=eligible.skipped)
    batch = 0
    while not ledger.is_terminal():
        ledger.expire_holds(host.now())
        approved = partners.to_grant()
        if approved and not ledger.is_blocked():
            batch += 1
            result = await host.execute(
                "grant_partner_access",
                grant_request(
                    ledger, stage, cohorts, f"grant:{batch}", host.now(), partners=approved
                ),
                GrantResult,
                summary=f"Grant early access to {len(approved)} government-approved partner(s)",
            )
            record_grants(ledger, result, stage, host.now())
            host.partners.partners_granted(stage.id, approved)
            granted.partners_total = granted.partner_count + result.partner_count
            granted.grants.extend(result.grants[: GRANT_SAMPLE - len(granted.grants)])
            host.commit()
            continue
        if not approved and not partners.undecided():
            host.partners.settle_partner_list(stage.id, host.now())
            host.commit()
            break
        host.partners.await_partner_list(stage.id, host.now())
        host.commit()
        await host.sleep_until_change({"Hold ends": ledger.next_hold_expiry()})
    return granted


def grant_request(
    ledger: Ledger,
    stage: AccessGrantStage,
    cohorts: list[Cohort],
    step: str,
    now: datetime,
    *,
    partners: list[str] | None = None,
) -> GrantRequest:
    """The grant activity's request for ``cohorts`` at ``stage`` (all of them, or only the
    government-approved ``partners``); ``step`` makes its idempotency key."""
    spec = ledger.spec
    return GrantRequest(
        idempotency_key=f"{spec.release_id}:{stage.id}:{step}",
        release_id=spec.release_id,
        stage=stage.id,
        model=spec.model,
        cohorts=cohorts,
        regions=spec.regions,
        surfaces=stage.surfaces,
        requested_at=now,
        partners=partners,
    )


# --- transitions -----------------------------------------------------------------------------


def record_grants(
    ledger: Ledger, result: GrantResult, stage: AccessGrantStage, now: datetime
) -> None:
    """Count every grant made; keep the first few in full (the registry keeps them all)."""
    status = ledger.status
    known = {g.grant_id for g in status.grants}
    room = GRANT_SAMPLE - len(status.grants)
    fresh = [g for g in result.grants if g.grant_id not in known]
    status.grants.extend(fresh[: max(room, 0)])
    summary = status.grant_summary
    summary.total += result.count
    summary.suspended += result.suspended_count
    summary.active += result.count - result.suspended_count
    summary.partners += result.partner_count
    counts = result.cohort_counts or {}
    if not counts:
        for grant in result.grants:
            counts[grant.cohort] = counts.get(grant.cohort, 0) + 1
    for cohort, count in counts.items():
        summary.cohorts[cohort] = summary.cohorts.get(cohort, 0) + count
    if result.grants_digest:
        summary.digests.append(result.grants_digest)
    partners = sorted({g.partner_id for g in result.grants})
    event = ledger.audit(
        now,
        SYSTEM,
        "access_granted",
        {
            "count": result.count,
            "partners": result.partner_count,
            "cohorts": counts,
            "grants_digest": result.grants_digest,
            "grants": [g.grant_id for g in result.grants],
            "sample_partners": partners,
            "skipped": result.skipped,
        },
        stage=stage.id,
    )
    cohorts = sorted(counts)
    ledger.notify(
        NotificationEvent.PARTNER_ACCESS_GRANTED,
        event,
        f"Early access to {ledger.title} granted",
        f"{result.partner_count} vetted partner(s) in {', '.join(cohorts) or 'no cohort'} now "
        f"have early access ({result.count} grant(s)); {len(result.skipped)} not eligible.",
        concerned=[ledger.spec.submitter],
    )


# --- policy checks ---------------------------------------------------------------------------


def check(ctx: CheckContext, index: int, stage: AccessGrantStage) -> bool:
    path: FieldPath = ("stages", index)
    known = [cohort.id for cohort in ctx.policy.cohorts]
    if not known:
        ctx.add(path, "grants partner access, but the policy declares no cohorts")
    for cohort_index, cohort in enumerate(stage.cohorts):
        if known and cohort not in known:
            message = f"unknown cohort '{cohort}'{did_you_mean(cohort, known)}"
            ctx.add((*path, "cohorts", cohort_index), message)
    if stage.minimum_period < timedelta(0):
        shown = show(stage.minimum_period)
        ctx.add((*path, "minimum_period"), f"must not be negative (got {shown})")
    return approval_gate.check_gate(ctx, stage, path)


# --- description -----------------------------------------------------------------------------


def leaves_when(stage: AccessGrantStage) -> str:
    cohorts = ", ".join(stage.cohorts) or "all cohorts"
    text = f"{cohorts} granted, then {format_duration(stage.minimum_period)} pass"
    if stage.quorum:
        text += ", then " + approval_gate.gate_sentence(stage, "approve")
    return text


SPEC = StageKindSpec(
    kind=StageKind.ACCESS_GRANT,
    model=AccessGrantStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)

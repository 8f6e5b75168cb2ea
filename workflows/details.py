"""The release's current details as markdown, for the Temporal UI's workflow page.

Every value a person or a payload supplied goes through :func:`md` (one escaped line: no heading,
table row, link or HTML of its own); identifiers and digests shown in code spans are validated
patterns that hold no backtick.
"""

from __future__ import annotations

from gatekeeper.models.enums import StageStatus
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.text import for_markdown as md
from gatekeeper.text import when

# Plain symbols, not emoji: they render in any font, including a headless browser's.
_MARK = {
    StageStatus.DONE: "✔ done",
    StageStatus.CURRENT: "**▶ current**",
    StageStatus.PENDING: "· pending",
    StageStatus.SKIPPED: "↷ skipped",
}


def current_details(status: ReleaseStatus) -> str:
    """Stage table, what is awaited and from whom, deadlines, holds, suspensions."""
    spec = status.spec
    lines = [
        f"## {md(spec.model.name)} {md(spec.model.version)} — **{status.state.value}**",
        "",
        f"Release `{status.release_id}` · risk tier **{spec.risk_tier.value}** · covered model "
        f"**{spec.covered_model.value}** · submitted by `{spec.submitter}` · policy "
        f"`{status.policy_id}` v{status.policy_version} (`{status.policy_sha256[:12]}`)",
        "",
        "| stage | status | started | ended | note |",
        "|---|---|---|---|---|",
    ]
    for stage in status.stages:
        lines.append(
            f"| {md(stage.title)} | {_MARK[stage.status]} | {when(stage.started_at)} | "
            f"{when(stage.ended_at)} | {md(stage.note or '')} |"
        )
    lines.append("")
    if status.awaiting:
        awaiting = status.awaiting
        who = ", ".join([*map(md, awaiting.roles), *(f"`{p}`" for p in awaiting.people)]) or "—"
        lines.append(
            f"**Waiting for:** {md(awaiting.what)} — from {who} (since {when(awaiting.since)})"
        )
        if awaiting.until:
            lines.append(f"**Deadline / ends:** {when(awaiting.until)}")
    lines.extend(_gate_line(status))
    gov = status.government
    if gov.window_ends_at:
        lines.append(
            f"**Government window:** opened {when(gov.window_opened_at)}, ends "
            f"{when(gov.window_ends_at)}"
            + (f", cleared {when(gov.cleared_at)}" if gov.cleared_at else "")
        )
    for concern in gov.open_concerns():
        lines.append(f"**Open government concern {md(concern.id)}:** {md(concern.text)}")
    for hold in status.active_holds():
        until = f" until {when(hold.until)}" if hold.until else ""
        lines.append(f"**Held ({md(hold.kind)}) by {md(hold.by)}:** {md(hold.reason)}{until}")
    for suspension in status.active_suspensions():
        lines.append(
            f"**Access suspended by order {md(suspension.order_id)} ({md(suspension.scope)}):** "
            f"{md(suspension.reason)}"
        )
    summary = status.grant_summary
    if summary.total:
        lines.append(
            f"**Partner grants:** {summary.total} to {summary.partners} partner(s) — "
            f"{summary.active} active, {summary.suspended} suspended, {summary.revoked} revoked"
        )
    if status.outcome:
        lines.append(f"**Outcome:** {md(status.outcome)}")
    lines.append(f"\nAudit head `{status.audit_head[:16]}` · {status.audit_length} events")
    return "\n".join(lines)


def _gate_line(status: ReleaseStatus) -> list[str]:
    """The open gate's clocks and approvals: how long it has waited and who already said yes."""
    gate = status.gates.get(status.stage or "")
    if gate is None or gate.closed_at is not None:
        return []
    parts = [f"opened {when(gate.opened_at)}"]
    if gate.deadline_at:
        parts.append(f"deadline {when(gate.deadline_at)}")
    if gate.reminders_sent:
        parts.append(f"{gate.reminders_sent} reminder(s) sent")
    if gate.escalated_at:
        parts.append(f"escalated {when(gate.escalated_at)}")
    approvals = [f"`{d.on_behalf_of or d.person}` ({md(d.role)})" for d in gate.valid_approvals()]
    parts.append(f"approved by {', '.join(approvals)}" if approvals else "no approval yet")
    return [f"**Gate {md(gate.stage)}:** " + " · ".join(parts)]

"""A release's current details as Markdown, for the Temporal UI's workflow page.

Formats the :class:`~gatekeeper.status_view.StatusView` the terminal and the dossier format too.
Every value a person or a payload supplied goes through :func:`md` (one escaped line: no
heading, table row, link or HTML of its own); identifiers and digests shown in code spans are
validated patterns that hold no backtick.

Pure (no I/O): the release workflow sets these details after every change.
"""

from __future__ import annotations

from gatekeeper.models.enums import StageStatus
from gatekeeper.models.status import ReleaseStatus, StageRecord
from gatekeeper.status_view import Government, OpenGate, StatusView, view
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
    return details(view(status))


def details(v: StatusView) -> str:
    """:func:`current_details` of a view already computed."""
    lines = [
        f"## {md(v.headline)} — **{v.state.value}**",
        "",
        f"Release `{v.release_id}` · risk tier **{v.risk_tier}** · covered model "
        f"**{v.covered_model}** · submitted by `{v.submitter}` · policy "
        f"`{v.policy_id}` v{v.policy_version} (`{v.policy_sha256[:12]}`)",
        "",
        "**Stages:**",
        "",
    ]
    # A list, not a table: the Temporal UI renders a Markdown table without cell padding, so
    # its columns ran together ("Internal review✔ done").
    for number, stage in enumerate(v.stages, start=1):
        lines.append(f"{number}. {_stage_line(stage)}")
    lines.append("")
    if v.waiting:
        waiting = v.waiting
        who = ", ".join([*map(md, waiting.roles), *(f"`{p}`" for p in waiting.people)]) or "—"
        lines.append(
            f"**Waiting for:** {md(waiting.what)} — from {who} (since {when(waiting.since)})"
        )
        if waiting.until:
            lines.append(f"**Deadline / ends:** {when(waiting.until)}")
    if v.open_gate:
        lines.append(_gate_line(v.open_gate))
    lines.extend(_government_lines(v.government))
    for hold in v.active_holds:
        until = f" until {when(hold.until)}" if hold.until else ""
        lines.append(f"**Held ({md(hold.kind)}) by {md(hold.by)}:** {md(hold.reason)}{until}")
    for suspension in v.active_suspensions:
        lines.append(
            f"**Access suspended by order {md(suspension.order_id)} ({md(suspension.scope)}):** "
            f"{md(suspension.reason)}"
        )
    for order in v.per_person_orders:
        lines.append(
            f"**Under order {md(order.order_id)} ({md(order.scope)}), enforced per person by "
            f"access checks:** {md(order.reason)}"
        )
    for failure in v.evidence_failures:
        lines.append(f"**Evidence {md(failure.id)} {failure.result}:** {md(failure.detail)}")
    grants = v.grants
    if grants.total:
        lines.append(
            f"**Partner grants:** {grants.total} to {grants.partners} partner(s) — "
            f"{grants.active} active, {grants.suspended} suspended, {grants.revoked} revoked"
        )
    if v.outcome:
        lines.append(f"**Outcome:** {md(v.outcome)}")
    lines.append(f"\nAudit head `{v.audit_head[:16]}` · {v.audit_length} events")
    return "\n".join(lines)


def _stage_line(stage: StageRecord) -> str:
    """One stage: its mark and title, when it ran, and its note, separated so they cannot run
    together however the list is rendered."""
    parts = [f"{_MARK[stage.status]} — **{md(stage.title)}**"]
    if stage.started_at and stage.ended_at:
        parts.append(f"{when(stage.started_at)} → {when(stage.ended_at)}")
    elif stage.started_at:
        parts.append(f"since {when(stage.started_at)}")
    elif stage.ended_at:
        parts.append(when(stage.ended_at))
    if stage.note:
        parts.append(md(stage.note))
    return " · ".join(parts)


def _gate_line(gate: OpenGate) -> str:
    """The open gate's clocks and approvals: how long it has waited and who already said yes."""
    parts = [f"opened {when(gate.opened_at)}"]
    if gate.deadline_at:
        parts.append(f"deadline {when(gate.deadline_at)}")
    if gate.reminders_sent:
        parts.append(f"{gate.reminders_sent} reminder(s) sent")
    if gate.escalated_at:
        parts.append(f"escalated {when(gate.escalated_at)}")
    approvals = [f"`{a.who}` ({md(a.role)})" for a in gate.approvals]
    parts.append(f"approved by {', '.join(approvals)}" if approvals else "no approval yet")
    return f"**Gate {md(gate.stage)}:** " + " · ".join(parts)


def _government_lines(gov: Government) -> list[str]:
    """Receipt, window and clearance on one line, then each concern with its state."""
    lines: list[str] = []
    if gov.window_opened_at:
        line = f"**Government window:** opened {when(gov.window_opened_at)}, "
        if gov.window_closed_at is not None:
            # Ended: when it did (a clearance ends it before its scheduled end), not the date
            # a delay had extended it to.
            line += f"ended {when(gov.window_closed_at)}"
            if gov.cleared_early:
                line += f" (cleared early; it was to end {when(gov.window_ends_at)})"
        else:
            line += f"ends {when(gov.window_ends_at)}"
        if gov.cleared_at:
            line += f", cleared {when(gov.cleared_at)} by `{gov.cleared_by}`"
        if gov.receipt_id:
            line += f" · receipt {md(gov.receipt_id)}"
        lines.append(line)
    elif gov.receipt_id:
        lines.append(f"**Government receipt:** {md(gov.receipt_id)}")
    for concern in gov.concerns:
        state = f"resolved {when(concern.resolved_at)}" if concern.resolved_at else "open"
        lines.append(f"**Government concern {md(concern.id)} ({state}):** {md(concern.text)}")
    return lines

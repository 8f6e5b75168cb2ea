"""How releases look in a terminal: one status view, list and inbox tables, one decision line.

Every value that came from a person or a payload is printed through :mod:`gatekeeper.text`:
:func:`plain` as a ``Text`` (never parsed as markup), :func:`markup` inside a markup string.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gatekeeper.cli.common import console, print_json
from gatekeeper.cli.inbox import InboxItem
from gatekeeper.cli.textual import markup as markup
from gatekeeper.cli.textual import plain as plain
from gatekeeper.models.enums import ReleaseState, StageStatus
from gatekeeper.models.status import ReleaseStatus, UpdateResult
from gatekeeper.release_list import ReleaseSummary
from gatekeeper.status_view import Government, OpenGate, StatusView, view
from gatekeeper.text import for_terminal, when

STATE_STYLE = {
    ReleaseState.ACTIVE: "cyan",
    ReleaseState.HELD: "yellow",
    ReleaseState.SUSPENDED: "magenta",
    ReleaseState.LAUNCHED: "green",
    ReleaseState.REJECTED: "red",
    ReleaseState.WITHDRAWN: "red",
}
STAGE_MARK = {
    StageStatus.DONE: "[green]✔ done[/]",
    StageStatus.CURRENT: "[bold cyan]▶ current[/]",
    StageStatus.PENDING: "[dim]· pending[/]",
    StageStatus.SKIPPED: "[dim]↷ skipped[/]",
}


def state_text(state: ReleaseState | str) -> Text:
    state = ReleaseState(state) if isinstance(state, str) and state else state
    if isinstance(state, ReleaseState):
        return Text(state.value, style=STATE_STYLE[state])
    return Text("—")


def status_view(status: ReleaseStatus | StatusView) -> Group:
    """Everything an operator or reviewer asks first: where it is, what it waits for, who decided."""
    v = status if isinstance(status, StatusView) else view(status)
    header = Text.assemble(
        (for_terminal(v.headline, one_line=True), "bold"),
        for_terminal(f"  release {v.release_id}  ·  ", one_line=True),
        state_text(v.state),
        f"  ·  risk {v.risk_tier}  ·  covered {v.covered_model}",
    )
    stages = Table(show_header=True, header_style="bold", expand=False, box=None, pad_edge=False)
    for column in ("stage", "status", "started", "ended", "note"):
        stages.add_column(column, overflow="fold")
    for stage in v.stages:
        stages.add_row(
            plain(stage.title),
            STAGE_MARK[stage.status],
            when(stage.started_at),
            when(stage.ended_at),
            plain(stage.note, one_line=False),
        )
    parts: list[RenderableType] = [
        header,
        Text(
            for_terminal(
                f"policy {v.policy_id} v{v.policy_version}  "
                f"sha256 {v.policy_sha256[:16]}…  submitted by {v.submitter}",
                one_line=True,
            ),
            style="dim",
        ),
        stages,
    ]
    if v.waiting:
        waiting = v.waiting
        line = (
            f"[bold]waiting for[/] {markup(waiting.what)}  [dim]from[/] "
            f"{markup(', '.join(waiting.who) or '—')}  [dim]since[/] {when(waiting.since)}"
        )
        if waiting.until:
            line += f"  [dim]until[/] {when(waiting.until)}"
        parts.append(Text.from_markup(line))
    if v.open_gate:
        parts.append(_gate_line(v.open_gate))
    parts.extend(_decision_tables(v))
    parts.extend(_government_lines(v.government))
    for hold in v.active_holds:
        parts.append(
            Text.from_markup(
                f"[yellow]held[/] ({markup(hold.kind)}) by {markup(hold.by)}: {markup(hold.reason)}"
                + (f" until {when(hold.until)}" if hold.until else "")
            )
        )
    for suspension in v.active_suspensions:
        parts.append(
            Text.from_markup(
                f"[magenta]suspended[/] by order {markup(suspension.order_id)} "
                f"({markup(suspension.scope)}): {markup(suspension.reason)}"
            )
        )
    for order in v.per_person_orders:
        parts.append(
            Text.from_markup(
                f"[magenta]under order[/] {markup(order.order_id)} ({markup(order.scope)}, "
                f"enforced per person by access checks): {markup(order.reason)}"
            )
        )
    for failure in v.evidence_failures:  # the refusal or the reason (plain text, never markup)
        parts.append(
            Text.assemble(
                ("evidence ", "red"),
                for_terminal(f"{failure.id} {failure.result}: {failure.detail}", one_line=True),
            )
        )
    grants = v.grants
    if grants.total:
        parts.append(
            Text(
                f"partner grants: {grants.total} to {grants.partners} partner(s) — "
                f"{grants.active} active, {grants.suspended} suspended, {grants.revoked} revoked"
            )
        )
    if v.outcome:
        parts.append(Text.from_markup(f"[bold]outcome[/] {markup(v.outcome)}"))
    parts.append(Text(f"audit: {v.audit_length} events, head {v.audit_head[:16]}…", style="dim"))
    return Group(*parts)


def _gate_line(gate: OpenGate) -> Text:
    """The open gate's clocks and approvals: how long it has waited and who already said yes."""
    parts = [f"opened {when(gate.opened_at)}"]
    if gate.deadline_at:
        parts.append(f"deadline {when(gate.deadline_at)}")
    if gate.reminders_sent:
        parts.append(f"{gate.reminders_sent} reminder(s) sent")
    if gate.escalated_at:
        parts.append(f"escalated {when(gate.escalated_at)}")
    approvals = ", ".join(f"{a.who} ({a.role})" for a in gate.approvals)
    parts.append(f"approved by {approvals}" if approvals else "no approval yet")
    return Text.assemble(
        ("gate ", "bold"), for_terminal(f"{gate.stage}: " + " · ".join(parts), one_line=True)
    )


def _decision_tables(v: StatusView) -> list[RenderableType]:
    """One table per gate that recorded decisions, in the order the gates opened."""
    tables: dict[str, Table] = {}
    for d in v.decisions:
        table = tables.get(d.stage)
        if table is None:
            table = tables[d.stage] = Table(
                title=plain(f"decisions at {d.stage}"),
                title_justify="left",
                box=None,
                header_style="bold",
            )
            for column in ("decision", "by", "role", "at", "valid", "comment"):
                table.add_column(column, overflow="fold")
        table.add_row(
            plain(
                d.kind
                + (" ✍" if d.signed else "")
                + (f" {d.signed_with}" if d.signed_with not in ("", "CLI key") else "")
            ),
            plain(d.by),
            plain(d.role),
            when(d.at),
            plain("yes" if d.valid else f"no: {d.invalidated_reason}"),
            plain(d.comment, one_line=False),
        )
    return list(tables.values())


def _government_lines(gov: Government) -> list[RenderableType]:
    """Receipt, window and clearance on one line, then each concern with its state."""
    lines: list[RenderableType] = []
    if gov.involved:
        line = f"[bold]government[/] receipt {markup(gov.receipt_id or '—')}"
        if gov.window_opened_at:
            line += f"; window {when(gov.window_opened_at)} → {when(gov.window_ends_at)}"
        if gov.cleared_at:
            line += f"; cleared {when(gov.cleared_at)} by {markup(gov.cleared_by)}"
        lines.append(Text.from_markup(line))
    for concern in gov.concerns:
        state = f"resolved {when(concern.resolved_at)}" if concern.resolved_at else "[red]open[/]"
        lines.append(
            Text.from_markup(f"  concern {markup(concern.id)}: {markup(concern.text)} ({state})")
        )
    return lines


def print_status(
    console: Console,
    status: ReleaseStatus,
    signed_with: Mapping[tuple[str, str, str, str], str] | None = None,
) -> None:
    """``signed_with``: how each decision was signed (see ``status_view.view``); a passkey or
    gateway signature is named after the decision's ✍."""
    # Wrapped to the terminal, never cut: what a release waits for and from whom is the line
    # people read first, whatever its length.
    console.print(Panel(status_view(view(status, signed_with)), expand=False), soft_wrap=False)


def show_result(result: UpdateResult, json_: bool) -> None:
    """What every decision command prints: the whole result as JSON, or one line for a person."""
    if json_:
        print_json(result)
    else:
        print_result(console, result)


def print_result(console: Console, result: UpdateResult) -> None:
    where = result.stage or "—"
    console.print(
        Text.assemble(
            ("✔ ", "green"),
            for_terminal(result.message, one_line=True),
            "  ",
            ("[", "dim"),
            state_text(result.state),
            (for_terminal(f" at {where}, status v{result.status_version}]", one_line=True), "dim"),
        )
    )


#: ``release list``'s columns, most important first: at a narrow width the last ones are
#: dropped until the table fits; the first five (which release, where it is, its state, whom
#: it waits for and since when) always stay, wrapped if they must.
LIST_COLUMNS: tuple[str, ...] = (
    "release",
    "stage",
    "state",
    "awaiting",
    "since",
    "window ends",
    "model",
    "version",
    "risk",
    "submitted by",
    "started",
)
LIST_KEPT = 5
#: Columns never folded: the release id, its stage id and short fixed-shape values (a state, a time).
UNBROKEN_COLUMNS = frozenset({"release", "stage", "state", "since", "window ends", "started"})
#: The least width whom a release awaits keeps before the stage column folds too.
AWAITING_ROOM = 12


def _list_cells(row: ReleaseSummary) -> dict[str, Text]:
    return {
        "release": plain(row.release_id),
        "model": plain(row.model),
        "version": plain(row.version),
        "stage": plain(row.stage or "—"),
        "state": state_text(row.state) if row.state else plain(row.execution_status),
        "awaiting": plain(", ".join(row.awaiting_roles) or "—"),
        "since": Text(when(row.awaiting_since)),
        "window ends": Text(when(row.window_ends_at)),
        "risk": plain(row.risk_tier),
        "submitted by": plain(row.submitted_by),
        "started": Text(when(row.started_at)),
    }


def list_table(rows: Sequence[ReleaseSummary], width: int | None = None) -> Table:
    """The releases as a table that fits ``width`` (the console's): less important columns
    are dropped first; if the kept ones still do not fit, "since" shows how long ago (``2h 5m
    ago``) instead of the date, and whom it awaits folds onto more lines. The id, stage, state
    and time are never folded (a time on two lines reads as two values); nothing is cut."""
    cells = [_list_cells(row) for row in rows]
    available = width if width is not None else console.width
    chosen = list(LIST_COLUMNS)
    while len(chosen) > LIST_KEPT and _natural_width(chosen, cells) > available:
        chosen.pop()
    if _natural_width(chosen, cells) > available:
        for row, cell in zip(rows, cells, strict=True):
            if row.awaiting_since is not None:
                cell["since"] = Text(f"{age(row.awaiting_since)} ago")
    fixed = [c for c in chosen if c in UNBROKEN_COLUMNS]
    room = available - _natural_width(fixed, cells) - 2 * (len(chosen) - len(fixed))
    folding = {c for c in chosen if c not in UNBROKEN_COLUMNS}
    if room < AWAITING_ROOM * len(folding) and "stage" in chosen:
        folding.add("stage")  # a very long id: the stage folds rather than whom it awaits
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in chosen:
        whole = column not in folding
        natural = _natural_width([column], cells)
        table.add_column(
            column, overflow="fold", no_wrap=whole, min_width=natural if whole else None
        )
    for cell in cells:
        table.add_row(*(cell[column] for column in chosen))
    return table


def _natural_width(columns: Sequence[str], cells: Sequence[dict[str, Text]]) -> int:
    """How wide the table is with ``columns`` and nothing wrapped (one space either side of a
    column, none at the edges)."""
    widths = [max([len(c)] + [row[c].cell_len for row in cells]) for c in columns]
    return sum(widths) + 2 * (len(widths) - 1)


def age(since: datetime, now: datetime | None = None) -> str:
    """How long ago, in the two largest units: ``3d 4h``, ``2h 5m``, ``40s``."""
    seconds = max(int(((now or datetime.now(UTC)) - since).total_seconds()), 0)
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def inbox_view(items: Sequence[InboxItem]) -> Group:
    """A reviewer's inbox, oldest wait first: one line per release, then what it asks of them.

    Two lines per item rather than a table: what a gate asks for is long, and an inbox must read
    in an 80-column terminal.
    """
    parts: list[Text] = []
    for item in items:
        head = Text.assemble(
            (for_terminal(item.release_id, one_line=True), "bold"),
            for_terminal(f"  {item.model} {item.version}  at ", one_line=True),
            (for_terminal(item.stage or "—", one_line=True), "cyan"),
            "  as ",
            (for_terminal(", ".join(item.because), one_line=True), "green"),
            f"  waiting {age(item.since)}",
        )
        if item.state != ReleaseState.ACTIVE.value:
            head.append("  ")
            head.append_text(state_text(item.state))
        if item.until:
            head.append(f"  due {when(item.until)}", style="yellow")
        parts += [head, Text(for_terminal(f"    {item.what}", one_line=True))]
    return Group(*parts)

"""``gatekeeper policy``: check a policy file, show a policy's pipeline."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from gatekeeper.cli import common
from gatekeeper.errors import PolicyError
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import CoveredDesignation
from gatekeeper.models.policy import (
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    GovernmentSubmissionStage,
    GovernmentWindowStage,
    Stage,
)
from gatekeeper.policy import LoadedPolicy, load_policy, load_policy_or_default

app = typer.Typer(help="Check and show release policies.", no_args_is_help=True)

#: Exit status when a policy has problems (the same as any other input error).
EXIT_PROBLEMS = 2


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="Policy file to check."),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Validate a policy file; print every problem as file:line:col: field: message."""
    try:
        loaded = load_policy(file)
    except PolicyError as err:
        if as_json:
            problems = [asdict(problem) for problem in err.problems]
            common.print_json({"ok": False, "source": err.source, "problems": problems})
        else:
            for problem in err.problems:
                common.console.print(problem.render(err.source), markup=False)
        raise typer.Exit(EXIT_PROBLEMS) from None
    policy = loaded.policy
    if as_json:
        common.print_json(
            {
                "ok": True,
                "source": loaded.source,
                "policy_id": policy.policy_id,
                "version": policy.version,
                "stages": len(policy.stages),
                "sha256": loaded.sha256,
            }
        )
        return
    summary = f"ok: {loaded.label}, {len(policy.stages)} stages, sha256 {loaded.sha256}"
    common.console.print(summary, markup=False)


@app.command("show")
def show(
    ctx: typer.Context,
    file: Path | None = typer.Argument(
        None, help="Policy file; default: GATEKEEPER_POLICY, else the packaged default policy."
    ),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Show a policy's pipeline: each stage, when it runs, and what makes it finish."""
    loaded = load_policy_or_default(file or common.settings(ctx).policy_path)
    if as_json:
        common.print_json(
            {"source": loaded.source, "sha256": loaded.sha256, "policy": loaded.policy}
        )
        return
    _print_policy(loaded)


def leaves_when(stage: Stage) -> str:
    """One sentence on what makes ``stage`` finish, for people reading a pipeline."""
    if isinstance(stage, ApprovalGateStage):
        return _gate_sentence(stage, "approve") + "; any reject ends the release"
    if isinstance(stage, GovernmentSubmissionStage):
        return f"clearinghouse '{stage.clearinghouse}' returns a receipt"
    if isinstance(stage, GovernmentWindowStage):
        text = f"{format_duration(stage.duration)} pass"
        if stage.allow_early_clearance:
            text += ", or the liaison records 'cleared'"
        return (
            f"{text}; delays may extend it up to {format_duration(stage.max_delay)} past its "
            "original end; an open concern blocks it"
        )
    if isinstance(stage, AccessGrantStage):
        cohorts = ", ".join(stage.cohorts) or "all cohorts"
        text = f"{cohorts} granted, then {format_duration(stage.minimum_period)} pass"
        if stage.quorum:
            text += ", then " + _gate_sentence(stage, "approve")
        return text
    return f"published on {', '.join(stage.surfaces)}"


def _gate_sentence(stage: GateSettings, verb: str) -> str:
    wanted = " and ".join(req.describe() for req in stage.quorum)
    text = f"{wanted} {verb}"
    if stage.deadline is not None:
        text += f" (deadline {format_duration(stage.deadline)}: {stage.on_deadline})"
    return text


def _print_policy(loaded: LoadedPolicy) -> None:
    policy = loaded.policy
    console = common.console
    console.print(Text(policy.title or policy.policy_id, style="bold"))
    console.print(f"{loaded.label} · {loaded.source}", markup=False)
    console.print(f"sha256 {loaded.sha256}", markup=False)
    pipeline = Table(title="Pipeline", title_justify="left", show_lines=True)
    pipeline.add_column("#", justify="right")
    pipeline.add_column("stage", no_wrap=True)
    pipeline.add_column("runs for")
    pipeline.add_column("leaves when", ratio=1)
    everyone = set(CoveredDesignation)
    for index, stage in enumerate(policy.stages, start=1):
        runs_for = "all" if set(stage.applies_to) == everyone else ", ".join(stage.applies_to)
        name = Text(stage.id)
        name.append(f"\n{stage.kind.value}", style="dim")
        pipeline.add_row(str(index), name, runs_for, Text(leaves_when(stage)))
    console.print(pipeline)
    roster = Table(title="Roster", title_justify="left")
    for column in ("person", "name", "roles", "signing key"):
        roster.add_column(column, overflow="fold")
    for person in policy.roster:
        key = "yes" if person.public_key else "-"
        roster.add_row(person.id, Text(person.name), Text(", ".join(person.roles)), key)
    console.print(roster)

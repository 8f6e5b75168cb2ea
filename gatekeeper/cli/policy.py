"""``gatekeeper policy``: check a policy file, install it in the policy store, list and show.

Releases run only under installed policies: ``policy install`` puts a checked version into the
store the workers read (the registry's database), ``policy list`` shows who installed what and
when, ``policy show ID@VERSION`` prints an installed version's pipeline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from gatekeeper.cli import common, stores
from gatekeeper.errors import InputError, PolicyError
from gatekeeper.models.enums import CoveredDesignation
from gatekeeper.models.installed import POLICY_REF_PATTERN, InstalledPolicy
from gatekeeper.policy import LoadedPolicy, load_policy, load_policy_or_default
from gatekeeper.settings import Settings
from gatekeeper.stages import leaves_when
from gatekeeper.text import when

#: A person id, as :data:`gatekeeper.models.base.Identifier` defines it.
_PERSON_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

if TYPE_CHECKING:
    from gatekeeper.adapters.policy_store import PolicyStore

app = typer.Typer(help="Check, install, list and show release policies.", no_args_is_help=True)

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


@contextmanager
def open_store(settings: Settings, *, create: bool = False) -> Iterator[PolicyStore]:
    """The policy store the workers read (the access registry's database)."""
    # Imported here: SQLAlchemy and alembic cost every other command half a second to load.
    from gatekeeper.adapters.policy_store import PolicyStore

    store = PolicyStore(stores.registry_url(settings, create=create))
    try:
        yield store
    finally:
        store.close()


@app.command("install")
def install(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Policy file to install (checked in full first)."),
    by: str = typer.Option(
        ..., "--as", help="Your person id: recorded as who installed this version."
    ),
    default: bool = typer.Option(
        False, "--default", help="Also make it the default for releases that name no policy."
    ),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Install a policy version into the store the workers read; installed versions never change.

    Installing the same content again changes nothing; other content under an installed
    id@version is refused (give it a new version).
    """
    if not _PERSON_ID.match(by):
        raise InputError(f"--as: {by!r} is not a person id (lower-case letters, digits, . _ -)")
    loaded = load_policy(file)
    with open_store(common.settings(ctx), create=True) as store:
        result = store.install(loaded.policy, by=by, default=default)
    if as_json:
        common.print_json(
            {
                "ok": True,
                "created": result.created,
                "default_changed": result.default_changed,
                "installed": _summary(result.installed),
            }
        )
        return
    common.console.print(result.message, markup=False)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = common.JSON_OPTION) -> None:
    """Every installed policy version: sha256, who installed it and when, the default."""
    with open_store(common.settings(ctx)) as store:
        installed = store.list()
    if as_json:
        common.print_json([_summary(item) for item in installed])
        return
    if not installed:
        common.console.print(
            "no policy is installed; install one with `gatekeeper policy install FILE --as YOU`",
            markup=False,
        )
        return
    table = Table(title="Installed policies", title_justify="left")
    table.add_column("policy", ratio=1, overflow="fold")
    for column in ("stages", "sha256", "installed by", "installed at", ""):
        table.add_column(column, no_wrap=True, justify="right" if column == "stages" else "left")
    for item in installed:
        name = Text(item.ref, style="bold")
        if item.policy.title:
            name.append(f"\n{item.policy.title}", style="dim")
        table.add_row(
            name,
            str(len(item.policy.stages)),
            item.sha256[:12] + "…",
            Text(item.installed_by),
            item.installed_at.strftime("%Y-%m-%d %H:%M UTC"),
            "default" if item.is_default else "",
        )
    common.print_table(table)


def _summary(item: InstalledPolicy) -> dict[str, object]:
    return {
        "ref": item.ref,
        "policy_id": item.policy_id,
        "version": item.version,
        "title": item.policy.title,
        "stages": len(item.policy.stages),
        "sha256": item.sha256,
        "installed_by": item.installed_by,
        "installed_at": common.rfc3339(item.installed_at),
        "default": item.is_default,
    }


@app.command("show")
def show(
    ctx: typer.Context,
    what: str | None = typer.Argument(
        None,
        help="An installed ID@VERSION, or a policy file; default: GATEKEEPER_POLICY, else the "
        "packaged default policy.",
    ),
    as_json: bool = common.JSON_OPTION,
) -> None:
    """Show a policy's pipeline: each stage, when it runs, and what makes it finish."""
    if what is not None and re.match(POLICY_REF_PATTERN, what) and not Path(what).exists():
        with open_store(common.settings(ctx)) as store:
            item = store.get(what)
        if as_json:
            common.print_json({**_summary(item), "policy": item.policy})
            return
        _print_policy(
            LoadedPolicy(
                item.policy,
                item.sha256,
                f"installed by {item.installed_by} at {when(item.installed_at, seconds=True)}",
            )
        )
        return
    loaded = load_policy_or_default(Path(what) if what else common.settings(ctx).policy_path)
    if as_json:
        common.print_json(
            {"source": loaded.source, "sha256": loaded.sha256, "policy": loaded.policy}
        )
        return
    _print_policy(loaded)


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
    common.print_table(pipeline, console)
    roster = Table(title="Roster", title_justify="left")
    for column in ("person", "name", "roles", "signing key"):
        roster.add_column(column, overflow="fold")
    for person in policy.roster:
        key = "yes" if person.public_key else "-"
        roster.add_row(person.id, Text(person.name), Text(", ".join(person.roles)), key)
    common.print_table(roster, console)

"""``gatekeeper ops``: operators hold, resume and withdraw releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from gatekeeper.cli import common, render, stores
from gatekeeper.cli.session import parse_when, releases
from gatekeeper.models.messages import OperatorRequest
from gatekeeper.models.payloads import parse_request
from gatekeeper.models.status import UpdateResult
from gatekeeper.settings import Settings

app = typer.Typer(
    help="Hold, resume or withdraw a release; reconcile grants; repair a release that does not replay.",
    no_args_is_help=True,
)

AS_OPTION = typer.Option(..., "--as", help="The operator (a roster id).")
REASON_OPTION = typer.Option(..., "--reason", help="Why; everyone notified reads it.")
KEY_OPTION = typer.Option(
    None, "--key", help="Ed25519 private key (PEM) to sign with (default: <keys dir>/<you>.pem)."
)


def _operate(
    settings: Settings,
    action: str,
    release_id: str,
    fields: dict[str, Any],
    json_: bool,
    key: Path | None = None,
) -> None:
    request = parse_request(OperatorRequest, fields, action)

    async def go() -> UpdateResult:
        async with releases(settings, key) as api:
            return await api.operate(release_id, action, request)

    result = common.run(go())
    render.show_result(result, json_)


@app.command()
def hold(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = AS_OPTION,
    reason: str = REASON_OPTION,
    until: str = typer.Option(
        None, "--until", help="Resume by itself at this time (2026-12-31, +2d)."
    ),
    key: Path = KEY_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Stop the release advancing until it is resumed."""
    when = parse_when(until, option="--until") if until else None
    _operate(
        common.settings(ctx),
        "hold",
        release_id,
        {"by": as_, "reason": reason, "until": when},
        json_,
        key,
    )


@app.command()
def resume(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = AS_OPTION,
    reason: str = REASON_OPTION,
    key: Path = KEY_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Lift an operator hold (or a missed-deadline hold)."""
    _operate(common.settings(ctx), "resume", release_id, {"by": as_, "reason": reason}, json_, key)


@app.command()
def withdraw(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = AS_OPTION,
    reason: str = REASON_OPTION,
    key: Path = KEY_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """End the release for good: every grant it made is revoked and everyone is told."""
    _operate(
        common.settings(ctx), "withdraw", release_id, {"by": as_, "reason": reason}, json_, key
    )


@app.command("reconcile-grants")
def reconcile_grants_command(ctx: typer.Context, json_: bool = common.JSON_OPTION) -> None:
    """Revoke every grant of a release whose workflow ended without launching (terminated,
    failed, timed out). Workers do this when they start and every GATEKEEPER_RECONCILE_EVERY
    seconds; this runs it now."""
    from gatekeeper.adapters.registry import AccessRegistry
    from gatekeeper.reconcile import Reconciled, reconcile_grants

    current = common.settings(ctx)

    async def go() -> list[Reconciled]:
        async with releases(current) as api:
            registry = AccessRegistry(stores.registry_url(current))
            try:
                return await reconcile_grants(api.client, registry)
            finally:
                registry.close()

    done = common.run(go())
    if json_:
        common.print_json([item.__dict__ for item in done])
        return
    for item in done:
        common.console.print(Text(item.describe()))
    revoked = sum(item.revoked for item in done)
    common.console.print(Text(f"{revoked} grant(s) of {len(done)} ended release(s) revoked"))


@app.command("repair")
def repair_command(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    reason: str = typer.Option(
        None, "--reason", help="Why (recorded as the reset's reason in the workflow's history)."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Bring back a release whose workflow task keeps failing because its history does not
    replay: reset it to its last good workflow task, re-applying every later decision. A release
    whose history replays cleanly is left alone."""
    from gatekeeper.repair import Repair, repair
    from workflows.registry import ALL_WORKFLOWS

    current = common.settings(ctx)

    async def go() -> Repair:
        async with releases(current) as api:
            named = await api.resolve(release_id)
            return await repair(api.client, named, workflows=ALL_WORKFLOWS, reason=reason)

    done = common.run(go())
    if json_:
        common.print_json(done.as_dict())
        return
    common.console.print(Text(done.describe()))

"""``gatekeeper ops``: operators hold, resume and withdraw releases."""

from __future__ import annotations

from typing import Any

import typer

from gatekeeper.cli import common, render
from gatekeeper.cli.session import parse_when, releases
from gatekeeper.models.messages import OperatorRequest
from gatekeeper.models.payloads import parse_request
from gatekeeper.models.status import UpdateResult
from gatekeeper.settings import Settings

app = typer.Typer(help="Hold, resume or withdraw a release.", no_args_is_help=True)

AS_OPTION = typer.Option(..., "--as", help="The operator (a roster id).")
REASON_OPTION = typer.Option(..., "--reason", help="Why; everyone notified reads it.")


def _operate(
    settings: Settings, action: str, release_id: str, fields: dict[str, Any], json_: bool
) -> None:
    request = parse_request(OperatorRequest, fields, action)

    async def go() -> UpdateResult:
        async with releases(settings) as api:
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
    )


@app.command()
def resume(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = AS_OPTION,
    reason: str = REASON_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Lift an operator hold (or a missed-deadline hold)."""
    _operate(common.settings(ctx), "resume", release_id, {"by": as_, "reason": reason}, json_)


@app.command()
def withdraw(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = AS_OPTION,
    reason: str = REASON_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """End the release for good: every grant it made is revoked and everyone is told."""
    _operate(common.settings(ctx), "withdraw", release_id, {"by": as_, "reason": reason}, json_)

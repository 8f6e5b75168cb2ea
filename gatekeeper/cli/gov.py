"""``gatekeeper gov``: the government liaison records what the government said."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from gatekeeper.cli import common, render
from gatekeeper.cli.session import parse_when, releases
from gatekeeper.errors import InputError
from gatekeeper.models.enums import GovernmentResponseKind
from gatekeeper.models.messages import GovernmentResponse
from gatekeeper.models.partners import PartnerApprovalRequest
from gatekeeper.models.payloads import parse_request
from gatekeeper.models.status import UpdateResult

app = typer.Typer(help="Record the government's responses to a release.", no_args_is_help=True)


@app.command()
def respond(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = typer.Option(..., "--as", help="The government liaison (a roster id)."),
    cleared: bool = typer.Option(
        False, "--cleared", help="The government finished testing (may end the window early)."
    ),
    delay_until: str = typer.Option(
        None, "--delay-until", help="The government asked to delay until this date."
    ),
    concern: str = typer.Option(
        None, "--concern", help="The government raised a concern (its text)."
    ),
    resolve_concern: str = typer.Option(
        None,
        "--resolve-concern",
        help="A concern was resolved: its id (e.g. c1), or 'only' for the only open one.",
    ),
    reference: str = typer.Option("", "--reference", help="The government's letter or ticket."),
    key: Path = typer.Option(None, "--key", help="Ed25519 private key (PEM) to sign with."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Record exactly one response: --cleared, --delay-until, --concern or --resolve-concern."""
    chosen = [
        name
        for name, value in (
            ("--cleared", cleared),
            ("--delay-until", delay_until),
            ("--concern", concern),
            ("--resolve-concern", resolve_concern),
        )
        if value
    ]
    if len(chosen) != 1:
        raise InputError(
            "give exactly one of --cleared, --delay-until DATE, --concern TEXT, --resolve-concern [ID]"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    settings = common.settings(ctx)
    fields: dict[str, Any] = {}
    if cleared:
        kind = GovernmentResponseKind.CLEARED
    elif delay_until:
        kind = GovernmentResponseKind.DELAY_REQUESTED
        fields["delay_until"] = parse_when(delay_until, option="--delay-until")
    elif concern:
        kind = GovernmentResponseKind.CONCERN_RAISED
        fields["concern"] = concern
    else:
        kind = GovernmentResponseKind.CONCERN_RESOLVED
        if resolve_concern != "only":
            fields["concern_id"] = resolve_concern
    # Checked before anything is read or sent, worded as the workflow words it.
    draft = parse_request(
        GovernmentResponse,
        {"by": as_, "kind": kind, "reference": reference, **fields},
        "record_government_response",
    )

    async def go() -> UpdateResult:
        async with releases(settings, key) as api:
            return await api.respond(release_id, draft)

    result = common.run(go())
    render.show_result(result, json_)


@app.command("approve-partners")
def approve_partners(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = typer.Option(..., "--as", help="The government liaison (a roster id)."),
    partner: list[str] = typer.Option(
        ..., "--partner", "-p", help="A proposed partner id (repeat)."
    ),
    deny: bool = typer.Option(
        False, "--deny", help="The government denied them (default: approved)."
    ),
    reason: str = typer.Option("", "--reason"),
    reference: str = typer.Option("", "--reference", help="The government's letter or ticket."),
    key: Path = typer.Option(None, "--key", help="Ed25519 private key (PEM) to sign with."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Record the government's decision on proposed partners (government_approves_partners)."""
    settings = common.settings(ctx)
    decision = "deny" if deny else "approve"
    # Checked before anything is read or sent, worded as the workflow words it.
    draft = parse_request(
        PartnerApprovalRequest,
        {
            "by": as_,
            "partners": partner,
            "decision": decision,
            "reason": reason,
            "reference": reference,
        },
        "approve_partners",
    )

    async def go() -> UpdateResult:
        async with releases(settings, key) as api:
            return await api.approve_partners(release_id, draft)

    result = common.run(go())
    render.show_result(result, json_)

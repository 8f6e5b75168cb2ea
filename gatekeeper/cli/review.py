"""``gatekeeper review``: reviewers see their inbox, approve, reject or ask for changes, delegate."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from gatekeeper.cli import common, render
from gatekeeper.cli.inbox import Inbox, inbox_for
from gatekeeper.cli.release import policy_for
from gatekeeper.cli.session import parse_when, releases
from gatekeeper.errors import DecisionRefused, InputError
from gatekeeper.models.enums import DecisionKind
from gatekeeper.models.messages import DecisionRequest, DelegationRequest, DelegationRevocation
from gatekeeper.models.payloads import parse_request
from gatekeeper.models.status import UpdateResult
from gatekeeper.release_list import ListFilter
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.text import for_markup

app = typer.Typer(
    help="What waits for you; decide at a gate: approve, reject, request changes; delegate.",
    no_args_is_help=True,
)

AS_OPTION = typer.Option(..., "--as", help="Who is deciding (a roster id).")
ROLE_OPTION = typer.Option(..., "--role", help="The role you decide in (e.g. safety).")
COMMENT_OPTION = typer.Option("", "--comment", "-m", help="Why; kept in the audit trail.")
STAGE_OPTION = typer.Option(
    None, "--stage", help="The stage you are deciding (refused if it moved on)."
)
KEY_OPTION = typer.Option(
    None,
    "--key",
    help="Ed25519 private key (PEM) to sign with (default: <keys dir>/<you>.pem).",
)


def _decide(
    settings: Settings,
    kind: DecisionKind,
    release_id: str,
    person: str,
    role: str,
    comment: str,
    stage: str | None,
    key_file: Path | None,
) -> UpdateResult:
    # Checked before anything is read or sent, worded as the workflow words it.
    draft = parse_request(
        DecisionRequest,
        {"decider": person, "role": role, "stage": stage, "comment": comment},
        kind.value,
    )

    async def go() -> UpdateResult:
        async with releases(settings, key_file) as api:
            # The decision names the stage it decides (the signature binds it too): a gate
            # that moved on meanwhile refuses it rather than counting it elsewhere.
            decided = stage or (await api.status(release_id)).stage
            request = draft.model_copy(update={"stage": decided})
            return await api.decide(release_id, kind, request)

    return common.run(go())


def _decision_command(kind: DecisionKind, name: str, help_text: str) -> None:
    """Register ``review <name>``: the three decisions take the same options."""

    def command(
        ctx: typer.Context,
        release_id: str = typer.Argument(...),
        as_: str = AS_OPTION,
        role: str = ROLE_OPTION,
        comment: str = COMMENT_OPTION,
        stage: str = STAGE_OPTION,
        key: Path = KEY_OPTION,
        json_: bool = common.JSON_OPTION,
    ) -> None:
        settings = common.settings(ctx)
        render.show_result(
            _decide(settings, kind, release_id, as_, role, comment, stage, key), json_
        )

    command.__doc__ = help_text
    app.command(name)(command)


_decision_command(DecisionKind.APPROVE, "approve", "Approve the current gate.")
_decision_command(
    DecisionKind.REJECT,
    "reject",
    "Reject at the current gate: the release ends and every grant it made is revoked.",
)
_decision_command(
    DecisionKind.REQUEST_CHANGES,
    "request-changes",
    "Ask the submitter for changes; the gate waits for an amend.",
)


@app.command()
def delegate(
    ctx: typer.Context,
    release_id: str | None = typer.Argument(
        None, help="The release the delegation applies to; omitted: every running release."
    ),
    as_: str = AS_OPTION,
    to: str = typer.Option(..., "--to", help="Who may decide in your place."),
    role: str = ROLE_OPTION,
    until: str | None = typer.Option(
        None, "--until", help="When the delegation ends (2026-12-31, +7d); not with --revoke."
    ),
    reason: str = typer.Option("", "--reason"),
    revoke: bool = typer.Option(
        False, "--revoke", help="Take the role back from --to: it stops counting at once."
    ),
    key: Path = KEY_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Let another roster member decide in one of your roles, until a time (or, with
    --revoke, take it back: decisions they made with it at the open gate no longer stand).

    A delegation is recorded in each release it applies to (and audited there). Without a
    release id it is sent to every running release; releases started later need it again.
    Both are signed with your key, like every decision.
    """
    settings = common.settings(ctx)
    request: DelegationRequest | DelegationRevocation
    if revoke:
        if until is not None:
            raise InputError("--until does not go with --revoke")
        request = parse_request(
            DelegationRevocation,
            {"by": as_, "to": to, "role": role, "reason": reason},
            "revoke_delegation",
        )
    else:
        if until is None:
            raise InputError("--until is required (or --revoke to take a delegation back)")
        request = parse_request(
            DelegationRequest,
            {
                "by": as_,
                "to": to,
                "role": role,
                "until": parse_when(until, option="--until"),
                "reason": reason,
            },
            "delegate",
        )
    done = "revoked" if revoke else "delegated"

    async def send(api: Releases, rid: str) -> UpdateResult:
        if isinstance(request, DelegationRevocation):
            return await api.revoke_delegation(rid, request)
        return await api.delegate(rid, request)

    if release_id is not None:

        async def one() -> UpdateResult:
            async with releases(settings, key) as api:
                return await send(api, release_id)

        render.show_result(common.run(one()), json_)
        return

    async def every() -> list[tuple[str, str, str]]:
        outcomes: list[tuple[str, str, str]] = []
        async with releases(settings, key) as api:
            # Only this deployment's releases: other task queues have other workers (or none).
            only_here = ListFilter(running_only=True, task_queue=settings.task_queue)
            running = await api.list(only_here, limit=10_000)
            for row in running:
                try:
                    result = await send(api, row.release_id)
                    outcomes.append((row.release_id, done, result.message))
                except DecisionRefused as refused:
                    outcomes.append((row.release_id, refused.rule, str(refused)))
        return outcomes

    outcomes = common.run(every())
    if json_:
        common.print_json([{"release_id": r, "result": k, "message": m} for r, k, m in outcomes])
    elif not outcomes:
        common.console.print("no running releases: nothing to delegate")
    else:
        for rid, kind, message in outcomes:
            mark = "[green]✔[/]" if kind == done else "[yellow]✖[/]"
            common.console.print(f"{mark} {escape(rid)}: {for_markup(message, one_line=True)}")
    if outcomes and all(kind != done for _, kind, _ in outcomes):
        raise typer.Exit(7)


@app.command()
def inbox(
    ctx: typer.Context,
    as_: str = typer.Option(..., "--as", help="Whose inbox (a roster id)."),
    policy: Path = typer.Option(
        None,
        "--policy",
        help="Policy whose roster gives your roles (env GATEKEEPER_POLICY; default: packaged).",
    ),
    limit: int = typer.Option(
        200, "--limit", min=1, max=10_000, help="Look at most at this many candidate releases."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Releases waiting for you, oldest wait first.

    Found through visibility (AwaitingRoles holds one of your roster roles, or you submitted the
    release), then checked against each release: separation of duties and decisions you already
    made leave a release out. Roles you hold only by delegation are not searched.
    """
    settings = common.settings(ctx)
    loaded = policy_for(settings, policy)

    async def go() -> Inbox:
        async with releases(settings) as api:
            return await inbox_for(api, loaded.policy, as_, limit=limit)

    found = common.run(go())
    for release_id in found.unreadable:
        common.err_console.print(
            f"[yellow]warning:[/] release {escape(release_id)} did not answer; skipped"
        )
    if json_:
        common.print_json([item.as_json() for item in found.items])
        return
    if not found.items:
        common.console.print(f"nothing waits for {as_}", markup=False)
        return
    count = len(found.items)
    common.console.print(
        f"{count} release{'s' if count != 1 else ''} wait for {as_}, oldest first:", markup=False
    )
    common.console.print(render.inbox_view(found.items))

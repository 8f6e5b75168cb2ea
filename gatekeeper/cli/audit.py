"""``gatekeeper audit``: export a release's dossier, and verify that a dossier was not altered."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from gatekeeper.cli import common
from gatekeeper.cli.session import releases
from gatekeeper.dossier import Dossier, DossierFormat, collect_dossier, render, verify_file
from gatekeeper.errors import InputError
from gatekeeper.text import for_terminal

app = typer.Typer(
    help="Export a release's dossier (Markdown, JSON, HTML) and verify its audit chain.",
    no_args_is_help=True,
)


@app.command()
def export(
    ctx: typer.Context,
    release_id: str = typer.Argument(..., help="Release id (without the 'release-' prefix)."),
    fmt: DossierFormat = typer.Option(
        DossierFormat.MD, "--format", "-f", help="md or html for people; json to verify later."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the dossier to this file instead of stdout."
    ),
) -> None:
    """Write the release dossier: spec, policy and its hash, decisions with their signatures,
    government receipts and responses, grants and revocations, notifications sent, timeline."""
    settings = common.settings(ctx)

    async def go() -> Dossier:
        async with releases(settings) as api:
            return await collect_dossier(
                api, release_id, outbox_path=settings.data_dir / "outbox.jsonl"
            )

    dossier = common.run(go())
    text = render(dossier, fmt)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"--output: cannot write {output}: {err}") from err
    common.err_console.print(
        f"wrote the {fmt.value} dossier of {release_id} ({len(dossier.audit)} audit events, "
        f"head {dossier.audit_head[:16]}…) to {output}",
        markup=False,
    )


@app.command()
def verify(
    file: Path = typer.Argument(
        ..., help="A JSON dossier (audit export --format json) or an audit-store .jsonl file."
    ),
) -> None:
    """Recompute the audit chain; exit 1 naming the first altered event."""
    result = verify_file(file)
    # The message quotes the file, which may be anybody's: no control character reaches the terminal.
    common.console.print(for_terminal(result.message, one_line=True), markup=False)
    if not result.ok:
        raise typer.Exit(1)

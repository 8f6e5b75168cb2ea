"""The ``gatekeeper`` command: one typer app, one module per command group, one error boundary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.markup import escape

from gatekeeper.cli import common
from gatekeeper.errors import GatekeeperError
from gatekeeper.models.payloads import one_line
from gatekeeper.settings import Settings

app = typer.Typer(
    name="gatekeeper",
    help="Release frontier models through review, government testing, partner access and launch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    task_queue: str = typer.Option(
        None, "--task-queue", help="Task queue releases run on (env GATEKEEPER_TASK_QUEUE)."
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Where embedded adapters keep files (env GATEKEEPER_DATA_DIR)."
    ),
) -> None:
    """Load settings once, at the edge, for every sub-command."""
    ctx.obj = Settings.from_env().with_overrides(task_queue=task_queue, data_dir=data_dir)


def _register() -> None:
    # Imported here so `gatekeeper --help` stays quick and a broken group cannot hide the others.
    if app.registered_groups:  # already done (tests call main() many times in one process)
        return
    from gatekeeper.cli import groups

    groups.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every Gatekeeper error into one line and an exit code."""
    _register()
    try:
        # Without standalone mode typer *returns* a command's exit code instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except GatekeeperError as err:
        common.err_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
        sys.exit(err.exit_code)
    except ValidationError as err:
        # Models validate user input at the CLI edge; the first problem in one line, worded as
        # the workflow words a refused payload (requests go through parse_request instead).
        common.err_console.print(f"[red]error:[/red] {escape(one_line(err))}", highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        common.err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.TyperException as err:  # usage errors: unknown option, missing argument
        common.err_console.print(f"[red]error:[/red] {escape(err.format_message())}")
        sys.exit(err.exit_code or 2)


def run(argv: list[str] | None = None) -> None:
    """Console entry point: run :func:`main`, then leave without interpreter teardown.

    The Temporal client's Core threads can outlive the event loop; if the interpreter finalizes
    while one of them touches Python it aborts the process (temporalio/sdk-python#300). Every
    command has finished its work and closed its files by now, so flushing and ``os._exit``
    loses nothing and keeps the exit code honest.
    """
    code: int = 0
    try:
        main(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, int):
            code = exit_.code
        elif exit_.code is not None:  # sys.exit("message")
            common.err_console.print(str(exit_.code))
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

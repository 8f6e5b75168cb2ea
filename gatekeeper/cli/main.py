"""The ``gatekeeper`` command: one typer app, one module per command group, one error boundary."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer
from pydantic import ValidationError

from gatekeeper import redact
from gatekeeper.cli import common
from gatekeeper.errors import GatekeeperError
from gatekeeper.models.payloads import one_line
from gatekeeper.settings import Settings
from gatekeeper.text import for_markup

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
    redact.remember_environment(os.environ)
    ctx.obj = Settings.from_env().with_overrides(task_queue=task_queue, data_dir=data_dir)
    redact.remember_url(ctx.obj.registry_url)


def _line(text: object) -> str:
    """An error's text for the one line the CLI prints: secrets masked, controls and markup
    neutralised (a message may quote what a person typed)."""
    return for_markup(redact.mask(str(text)), one_line=True)


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
        common.err_console.print(f"[red]error:[/red] {_line(err)}", highlight=False)
        sys.exit(err.exit_code)
    except ValidationError as err:
        # Models validate user input at the CLI edge; the first problem in one line, worded as
        # the workflow words a refused payload (requests go through parse_request instead).
        common.err_console.print(f"[red]error:[/red] {_line(one_line(err))}", highlight=False)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        common.err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.TyperException as err:  # usage errors: unknown option, missing argument
        common.err_console.print(f"[red]error:[/red] {_line(err.format_message())}")
        sys.exit(err.exit_code or 2)
    except Exception as err:  # a bug: still one masked line (the trace only when debugging)
        if os.environ.get("GATEKEEPER_LOG_LEVEL", "").upper() == "DEBUG":
            trace = "".join(traceback.format_exception(err))
            common.err_console.print(redact.mask(trace), markup=False, highlight=False)
        common.err_console.print(
            f"[red]error:[/red] unexpected {type(err).__name__}: {_line(err)} "
            "(set GATEKEEPER_LOG_LEVEL=DEBUG for the trace)",
            highlight=False,
        )
        sys.exit(1)


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
            common.err_console.print(_line(exit_.code))
            code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

"""The ``gatekeeper`` command: one typer app, one module per command group, one error boundary.

The boundary (:func:`main`) turns every error into one line on stderr, ``error: <message>``, and
an exit code; when the command line has ``--json`` (every command but ``demo`` takes it), into
one JSON object on one line of stderr instead, stdout staying empty::

    {"error": "no release 'aurora-2.0.1' (did you mean 'aurora-2.0.0'?)", "exit_code": 5,
     "type": "release_not_found"}

A refusal adds ``"rule"`` (the rule broken). Messages never carry internal class names.

Exit codes, with the error's ``type``:

- 0: done (``release watch``: launched; ``access check``: allowed).
- 1: ``failed``, a side effect failed; ``unexpected``, a bug (the trace with
  ``GATEKEEPER_LOG_LEVEL=DEBUG``). Also a check that answered no: ``access check`` denied,
  ``audit verify`` found a problem, ``health`` unhealthy, ``release watch`` saw the release end
  without launching (these print their answer, not an error).
- 2: ``bad_input`` (a file, an argument or a value the registry refused) or ``usage`` (an
  unknown option, a missing argument, a value of the wrong type).
- 3: ``config``, configuration (settings, registry URL, keys, trust root).
- 4: ``unreachable``, the Temporal server could not be reached.
- 5: ``release_not_found`` or ``order_not_found``.
- 6: ``release_exists`` or ``order_exists`` (ids are never reused).
- 7: ``refused``, the release or order refused the decision (``rule`` says why).
- 8: ``no_answer``, no answer in time (usually: no worker running).
- 9: ``needs_repair``, the release's workflow task keeps failing (``gatekeeper ops repair``).
- 124: ``release watch --timeout`` passed first. 130: ``aborted`` (Ctrl-C).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer
from pydantic import ValidationError

from gatekeeper import redact
from gatekeeper.cli import common
from gatekeeper.errors import (
    AdapterError,
    ConfigError,
    ConnectionFailed,
    DecisionRefused,
    GatekeeperError,
    InputError,
    NoAnswer,
    OrderExists,
    OrderNotFound,
    ReleaseExists,
    ReleaseNeedsRepair,
    ReleaseNotFound,
    scrub_class_names,
)
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
    neutralised (a message may quote what a person typed), internal class names dropped."""
    return for_markup(_plain(text), one_line=True)


def _plain(text: object) -> str:
    """An error's text, masked, on one line, without the internal class names a failure
    relayed through Temporal carries (``RegistryError: no partner x`` reads ``no partner x``)."""
    return " ".join(scrub_class_names(redact.mask(str(text))).split())


#: The command modules attached to :data:`app` so far.
_REGISTERED: set[str] = set()


def _register(argv: list[str] | None = None, *, only_the_command: bool = False) -> None:
    """Attach the command groups to :data:`app`: all of them (tests call this, and ``main()``
    many times in one process), or with ``only_the_command`` just the module of the command
    ``argv`` runs (when there is one), as the ``gatekeeper`` process does: one command's startup
    imports that command's module, not every group's."""
    # Imported here so `gatekeeper --help` stays quick and a broken group cannot hide the others.
    from gatekeeper.cli import groups

    word = groups.command_word(sys.argv[1:] if argv is None else argv)
    groups.register(app, word if only_the_command else None, done=_REGISTERED)


#: What ``type`` an error has in its JSON form, by class (the first match wins).
ERROR_TYPES: tuple[tuple[type[GatekeeperError], str], ...] = (
    (ReleaseNeedsRepair, "needs_repair"),
    (NoAnswer, "no_answer"),
    (DecisionRefused, "refused"),
    (OrderExists, "order_exists"),
    (ReleaseExists, "release_exists"),
    (OrderNotFound, "order_not_found"),
    (ReleaseNotFound, "release_not_found"),
    (ConnectionFailed, "unreachable"),
    (ConfigError, "config"),
    (InputError, "bad_input"),
    (AdapterError, "failed"),
)


def error_type(err: GatekeeperError) -> str:
    """The stable name of an error's kind in JSON output (never a class name)."""
    for cls, name in ERROR_TYPES:
        if isinstance(err, cls):
            return name
    return "failed"


class _Report:
    """Where the error boundary reports: one red line, or one JSON object under ``--json``."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, message: str, code: int, kind: str, rule: str | None = None) -> None:
        if self.as_json:
            common.error_json(_plain(message), exit_code=code, kind=kind, rule=rule)
        else:
            common.err_console.print(f"[red]error:[/red] {_line(message)}", highlight=False)
        sys.exit(code)


def main(argv: list[str] | None = None, *, only_the_command: bool = False) -> None:
    """Entry point: run the app, turning every Gatekeeper error into one line and an exit code
    (one JSON object on stderr instead when the command line has ``--json``). With
    ``only_the_command`` (the ``gatekeeper`` process), only the invoked command's module is
    imported."""
    _register(argv, only_the_command=only_the_command)
    report = _Report(common.wants_json(sys.argv[1:] if argv is None else argv))
    try:
        # Without standalone mode typer *returns* a command's exit code instead of exiting.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except GatekeeperError as err:
        report(str(err), err.exit_code, error_type(err), getattr(err, "rule", None))
    except ValidationError as err:
        # Models validate user input at the CLI edge; the first problem in one line, worded as
        # the workflow words a refused payload (requests go through parse_request instead).
        report(one_line(err), 2, "bad_input", "bad_input")
    except (typer.Abort, KeyboardInterrupt):
        if report.as_json:
            common.error_json("aborted", exit_code=130, kind="aborted")
        else:
            common.err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.TyperException as err:  # usage errors: unknown option, missing argument
        report(err.format_message(), err.exit_code or 2, "usage")
    except Exception as err:  # a bug: still one masked line (the trace only when debugging)
        if os.environ.get("GATEKEEPER_LOG_LEVEL", "").upper() == "DEBUG":
            trace = "".join(traceback.format_exception(err))
            common.err_console.print(redact.mask(trace), markup=False, highlight=False)
        report(
            f"unexpected {type(err).__name__}: {err} (set GATEKEEPER_LOG_LEVEL=DEBUG for the trace)",
            1,
            "unexpected",
        )


def run(argv: list[str] | None = None) -> None:
    """Console entry point: run :func:`main`, then leave without interpreter teardown.

    The Temporal client's Core threads can outlive the event loop; if the interpreter finalizes
    while one of them touches Python it aborts the process (temporalio/sdk-python#300). Every
    command has finished its work and closed its files by now, so flushing and ``os._exit``
    loses nothing and keeps the exit code honest.
    """
    code: int = 0
    try:
        # The process runs one command and exits: only that command's module is imported.
        main(argv, only_the_command=True)
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

"""Every command group of ``gatekeeper``, registered on the root app in one place.

Each command word names the module that adds it (:data:`MODULES`). The ``gatekeeper`` process
imports only the module of the command it runs (:func:`command_word`): a command's startup does
not pay for every other group's imports (the Temporal client, the dossier, SQLAlchemy, the
console...). Help for the whole CLI, an unknown word and in-process callers register them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import typer

#: Every command word of ``gatekeeper`` and the module of ``gatekeeper.cli`` that adds it, in the
#: order ``gatekeeper --help`` lists them. A group module has ``app`` (added under the word);
#: the others ``register(app)``, adding all of their words at once.
MODULES: dict[str, str] = {
    "release": "release",
    "review": "review",
    "gov": "gov",
    "ops": "ops",
    "policy": "policy",
    "keys": "keys",
    "identity": "identity",
    "access": "access",
    "audit": "audit",
    "temporal-auth": "temporal_auth",
    "worker": "process",
    "dev": "process",
    "search-attributes": "admin",
    "codec-server": "admin",
    "codec-key": "admin",
    "health": "admin",
    "demo": "demo",
    "console": "console",
}
#: The modules that add commands to the root app themselves (``register(app)``).
ROOT_COMMANDS = frozenset({"process", "admin", "demo", "console"})
#: The root options that take a value (``_root`` in :mod:`gatekeeper.cli.main`).
ROOT_OPTIONS_WITH_VALUE = ("--task-queue", "--data-dir")
HELP = ("--help", "-h")


def command_word(argv: Sequence[str]) -> str | None:
    """The command word of a command line (``release`` in ``--data-dir d release status x``),
    if it is one of :data:`MODULES`; ``None`` for help on the root or anything else."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in HELP:
            return None
        elif arg in ROOT_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in MODULES else None
    return None


def register(app: typer.Typer, word: str | None = None, *, done: set[str] | None = None) -> None:
    """Attach the module of ``word``, or with ``None`` every group, in :data:`MODULES` order.
    ``done`` holds the modules attached already (updated), so none is attached twice."""
    done = set() if done is None else done
    modules = [MODULES[word]] if word is not None else list(dict.fromkeys(MODULES.values()))
    for name in modules:
        if name in done:
            continue
        module = importlib.import_module(f"gatekeeper.cli.{name}")
        if name in ROOT_COMMANDS:
            module.register(app)
        else:
            [group] = [w for w, m in MODULES.items() if m == name]
            app.add_typer(module.app, name=group)
        done.add(name)

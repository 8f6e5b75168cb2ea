"""The engine's database a CLI command opens itself: the registry.

Most commands talk to the worker through Temporal, but a few read or write the engine's database
directly (partners and people, grants, orders, checks, keys, policies, the dossier's
notifications). A shell whose ``GATEKEEPER_DATA_DIR`` is not the engine's would otherwise open a new,
empty registry in silence and answer from it: an empty table, a wrong ``access check``, a
dossier without notifications. So:

- a command that only reads refuses (exit 3) when the registry does not exist, naming the path;
- a command that writes creates it, as a first installation step may, and says so on stderr;
- ``audit export`` says on stderr what its dossier lacks when the registry is absent.

Every line names the data directory and how to point at the engine's: the ``export`` lines
``gatekeeper dev`` prints. Only a SQLite registry (the default, under the data directory) can be
missing this way; a server URL (PostgreSQL) is used as given.
"""

from __future__ import annotations

from pathlib import Path

from gatekeeper.cli.common import err_console
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for in-memory or non-SQLite URLs."""
    if not url.startswith("sqlite:///"):
        return None
    name = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


_DATA_DIR = (
    "point GATEKEEPER_DATA_DIR at the engine's data directory "
    "(`gatekeeper dev` prints the lines to export)"
)


def _pointer(settings: Settings) -> str:
    if settings.registry_url:
        return "point GATEKEEPER_REGISTRY_URL at the engine's registry"
    return _DATA_DIR


def _where(settings: Settings, path: Path) -> str:
    if settings.registry_url:
        return f"{path} (GATEKEEPER_REGISTRY_URL) does not exist"
    return f"no registry in the data directory {settings.data_dir.resolve()} ({path.name} does not exist)"


def missing_registry(settings: Settings) -> Path | None:
    """The registry's database file if it is a SQLite file that does not exist yet."""
    path = _sqlite_file(settings.effective_registry_url)
    return path if path is not None and not path.exists() else None


def registry_url(settings: Settings, *, create: bool = False) -> str:
    """The registry URL a command opens.

    A missing SQLite file is refused (``ConfigError``, exit 3) for a command that only reads;
    with ``create`` (a command that writes) it is created, with one line on stderr saying so.
    """
    url = settings.effective_registry_url
    path = missing_registry(settings)
    if path is None:
        return url
    if not create:
        raise ConfigError(f"{_where(settings, path)}; {_pointer(settings)}")
    err_console.print(
        f"note: {_where(settings, path)}: creating a new, empty registry; to use the engine's, "
        f"{_pointer(settings)}",
        markup=False,
    )
    return url


def note_missing_registry(settings: Settings, consequence: str) -> None:
    """One line on stderr when the registry does not exist: ``consequence`` says what is lost."""
    path = missing_registry(settings)
    if path is not None:
        err_console.print(
            f"note: {_where(settings, path)}: {consequence}; {_pointer(settings)}", markup=False
        )

"""Schema migrations with alembic, run programmatically when the registry opens.

There is no ``alembic.ini``: :func:`alembic_config` builds the configuration, pointing at the
``migrations`` directory shipped inside this package. To write a new revision after changing
``tables.py``::

    python -c "from alembic import command; from gatekeeper.adapters.registry.migrate import \\
        alembic_config; command.revision(alembic_config(), 'what changed', rev_id='0002')"

(and fill in ``upgrade``/``downgrade``, or autogenerate against a database at head).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from gatekeeper.adapters.registry.engine import WRITE_OPTION, translated
from gatekeeper.errors import RegistryError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Key of the PostgreSQL advisory lock that serialises concurrent upgrades.
_PG_LOCK_KEY = 0x6761_7465  # "gate"


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic ``Config`` for the registry; ``connection`` is what ``env.py`` migrates."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Revision files are modules mypy checks, so their names must not start with a digit.
    config.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this version of Gatekeeper (read once per process: the
    shipped revisions do not change while it runs)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no alembic revisions in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with translated("read schema version"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


#: Reads of the schema version a fresh SQLite file may refuse at once while another opener
#: turns it to WAL (the busy handler is not consulted then), and the pause before each retry.
_LOCKED_READS = 6
_LOCKED_PAUSE = 0.05


def _revision_when_readable(engine: Engine) -> str | None:
    """:func:`current_revision`, retried a few times on SQLite's transient "database is locked"
    (seen with several openers of an empty file at once); any other error at once."""
    for attempt in range(_LOCKED_READS):
        try:
            return current_revision(engine)
        except RegistryError as err:
            last = attempt == _LOCKED_READS - 1
            if last or not err.retryable or engine.dialect.name != "sqlite":
                raise
            time.sleep(_LOCKED_PAUSE * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def upgrade(engine: Engine) -> str:
    """Bring the schema to head, if it is not there already; returns the revision.

    Concurrent openers (a worker and a CLI on a fresh data directory) are serialised: SQLite by
    ``BEGIN IMMEDIATE``, PostgreSQL by an advisory lock. The loser then finds the schema at head.
    """
    head = head_revision()
    if _revision_when_readable(engine) == head:
        return head
    with (
        translated("migrate the registry schema"),
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        command.upgrade(alembic_config(connection), "head")
    return head

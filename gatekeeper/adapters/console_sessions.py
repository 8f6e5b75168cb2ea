"""Console sessions ended by signing out, in the registry database. No Temporal imports.

A console session is a signed cookie (``gk_session``) carrying a random session id (``sid``).
Signing out records the sid here; every console replica reading the same database then refuses
every copy of that cookie (:meth:`EndedSessions.ended`: one primary-key read). A row carries when
its session would have expired anyway (the sign-in's 12 hours); rows past that, by more than
:data:`PRUNE_GRACE`, are deleted whenever a sid is ended, so the table holds at most the sign-outs
of one sign-in lifetime.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import SQLITE_BUSY_TIMEOUT
from gatekeeper.adapters.registry.tables import console_sessions_ended as ended_table
from gatekeeper.errors import RegistryError

#: How long an ended row outlives its session before it is pruned: a replica whose clock lags
#: behind the one that prunes still refuses the cookie until its own 12 hours are over.
PRUNE_GRACE = timedelta(minutes=10)
#: The longest session id kept (the console makes 32 characters).
MAX_SID = 64


def _utcnow() -> datetime:
    return datetime.now(UTC)


class EndedSessions(Database):
    """The ended console sessions behind one SQLAlchemy URL. Thread-safe; call from a thread.

    Opening upgrades the schema to the newest migration, like the other registry stores.
    ``clock`` gives "now" (pruning); tests pass their own.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock

    def ended(self, sid: str) -> bool:
        """Whether the session ``sid`` was ended (one primary-key read)."""
        with self._read("read a console session") as connection:
            found = connection.execute(
                sa.select(ended_table.c.sid).where(ended_table.c.sid == sid)
            ).first()
        return found is not None

    def end(self, sid: str, *, expires_at: datetime) -> None:
        """Record ``sid`` as ended (again: no change), its row kept until ``expires_at`` (when
        the session would have expired anyway) and pruned after; prunes the rows past theirs."""
        if not sid or len(sid) > MAX_SID:
            raise ValueError(f"a session id has 1 to {MAX_SID} characters")
        now = self._clock()
        try:
            with self._write("end a console session") as connection:
                connection.execute(
                    sa.delete(ended_table).where(ended_table.c.expires_at < now - PRUNE_GRACE)
                )
                known = connection.execute(
                    sa.select(ended_table.c.sid).where(ended_table.c.sid == sid)
                ).first()
                if known is None:
                    connection.execute(
                        sa.insert(ended_table).values(sid=sid, ended_at=now, expires_at=expires_at)
                    )
        except RegistryError:
            # Another replica ended the same session at the same moment: it is ended.
            if not self.ended(sid):
                raise

    def count(self) -> int:
        """How many ended sessions are kept (for tests and operators)."""
        with self._read("count console sessions") as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(ended_table)).scalar_one()
            )

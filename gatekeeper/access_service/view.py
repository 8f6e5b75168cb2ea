"""The service's view of the registry: an :class:`AccessChecker` kept current by one poll thread.

Checks read the checker's in-memory index on the event loop and never wait for the database.
One thread (never two polls at once, never on the event loop) calls ``checker.update()`` every
``poll`` seconds: it reads the registry's change clock and applies what changed. The view
remembers when the last *successful* poll started; a view not confirmed current for longer
than ``staleness`` is stale, and the service then denies everything (fail closed) and says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from gatekeeper.access import AccessChecker
from gatekeeper.errors import ConfigError
from gatekeeper.redact import mask

log = structlog.get_logger("gatekeeper.access_service")

#: The longest error text a fail-closed reason quotes.
MAX_ERROR_CHARS = 300


def one_line(err: BaseException) -> str:
    """An error as one masked line of at most :data:`MAX_ERROR_CHARS` characters."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    line = mask(line)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


class LiveView:
    """A checker, and how sure the service is that it reflects the registry now.

    Args:
        checker: the checker (its first snapshot read already).
        poll: seconds between the starts of two polls.
        staleness: how long the view may go unconfirmed before checks fail closed.
        clock: ``time.monotonic`` (tests may pass another).
        on_poll: called on the poll thread after every poll, good or bad (the caller-token
            file's reload rides on it).
    """

    def __init__(
        self,
        checker: AccessChecker,
        *,
        poll: float,
        staleness: float,
        clock: Callable[[], float] = time.monotonic,
        on_poll: Callable[[], object] | None = None,
    ) -> None:
        self.checker = checker
        self.poll = poll
        self.staleness = staleness
        self._clock = clock
        self._on_poll = on_poll
        #: ``clock()`` when the last successful poll (or the first snapshot) started reading.
        self.confirmed_at: float = checker.taken_at
        self.last_error: str | None = None
        self.polls = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def seq(self) -> int:
        """The registry change sequence number the view reflects."""
        return int(getattr(self.checker, "seq", 0))

    def age(self, now: float | None = None) -> float:
        """Seconds since the view was last confirmed current."""
        return (self._clock() if now is None else now) - self.confirmed_at

    def stale_reason(self, now: float | None = None) -> str | None:
        """Why the view cannot be trusted now (the fail-closed reason), or ``None``."""
        age = self.age(now)
        if age <= self.staleness:
            return None
        cause = self.last_error or "the registry has not answered the current poll yet"
        return (
            f"access view not confirmed current for {age:.1f} s (bound {self.staleness:g} s): "
            f"{cause}"
        )

    def poll_once(self) -> bool:
        """One poll on the calling thread: ``True`` if the view changed.

        Raises:
            Exception: whatever ``update()`` raised (``RegistryError`` when the registry
                cannot be read); the view's age keeps growing.
        """
        began = self._clock()
        update = getattr(self.checker, "update", None)
        if update is None:  # until the change feed lands: a full snapshot each time
            self.checker.refresh()
            changed = True
        else:
            changed = bool(update())
        self.confirmed_at = began
        return changed

    def _run(self) -> None:
        while not self._stop.is_set():
            began = self._clock()
            try:
                self.poll_once()
            except Exception as err:  # any failure leaves the view unconfirmed, never the thread
                self.failures += 1
                error = one_line(err)
                if error != self.last_error:
                    log.warning("access view poll failed", error=error)
                self.last_error = error
            else:
                if self.last_error is not None:
                    log.info("access view current again", seq=self.seq)
                self.last_error = None
            self.polls += 1
            if self._on_poll is not None:
                try:
                    self._on_poll()
                except ConfigError as err:
                    log.warning("access service configuration", error=str(err))
            self._stop.wait(max(0.0, began + self.poll - self._clock()))

    def start(self) -> None:
        """Start the poll thread (a daemon: it never keeps a process alive)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="access-view-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; waits for a poll under way (up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

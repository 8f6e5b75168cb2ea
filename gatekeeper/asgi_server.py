"""uvicorn's server as our two HTTP services run it (the console, the access service): with
``own_signals=False`` it installs no signal handlers, so a process that embeds it (``gatekeeper
dev``, a test) stops it with :meth:`EmbeddableServer.stop` from any thread."""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn


class EmbeddableServer(uvicorn.Server):
    """uvicorn's server, optionally without signal handlers of its own."""

    def __init__(self, config: uvicorn.Config, *, own_signals: bool = True) -> None:
        super().__init__(config)
        self.own_signals = own_signals

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if self.own_signals:
            with super().capture_signals():
                yield
        else:
            yield

    def stop(self) -> None:
        """Stop serving (from any thread): requests under way finish first."""
        self.should_exit = True

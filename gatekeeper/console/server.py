"""The console on uvicorn, in the caller's event loop (``gatekeeper console``, ``gatekeeper dev``).

Every page handler awaits Temporal or runs the synchronous registry in a thread, so the console
never blocks the loop it shares with the dev server's worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

import uvicorn

from gatekeeper.console.app import create_app
from gatekeeper.console.settings import ConsoleSettings


class ConsoleServer(uvicorn.Server):
    """uvicorn's server; with ``own_signals=False`` it installs no signal handlers (the process
    that embeds it stops it with :meth:`stop`)."""

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
        self.should_exit = True


def console_server(settings: ConsoleSettings, *, own_signals: bool = True) -> ConsoleServer:
    """A server for the console app on ``settings.host``:``settings.port``."""
    config = uvicorn.Config(
        create_app(settings),
        # h11 bounds a request head; uvicorn's "auto" would pick httptools, installed for the
        # access service (gatekeeper.access_service.server bounds it there itself).
        http="h11",
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,  # the process's logging (gatekeeper.logging) stays as it is
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    return ConsoleServer(config, own_signals=own_signals)

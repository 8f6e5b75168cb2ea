"""The console on uvicorn, in the caller's event loop (``gatekeeper console``, ``gatekeeper dev``).

Every page handler awaits Temporal or runs the synchronous registry in a thread, so the console
never blocks the loop it shares with the dev server's worker.
"""

from __future__ import annotations

import uvicorn

from gatekeeper.asgi_server import EmbeddableServer
from gatekeeper.console.app import create_app
from gatekeeper.console.settings import ConsoleSettings


class ConsoleServer(EmbeddableServer):
    """The console's uvicorn server (see :class:`gatekeeper.asgi_server.EmbeddableServer`)."""


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

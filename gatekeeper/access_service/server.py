"""The service put together: registry, live view, caller auth, edge log, ASGI app, on uvicorn."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from uvicorn.config import HTTPProtocolType
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gatekeeper.access import AccessChecker, Snapshot
from gatekeeper.access_service.app import MAX_HEAD_BYTES, DecisionApp
from gatekeeper.access_service.edge_log import EdgeLog
from gatekeeper.access_service.settings import ServiceSettings
from gatekeeper.access_service.view import LiveView
from gatekeeper.adapters.registry.service import AccessRegistry
from gatekeeper.asgi_server import EmbeddableServer
from gatekeeper.errors import ConfigError

#: What the server buffers of a request head not yet complete (the app bounds complete ones).
MAX_INCOMPLETE_HEAD_BYTES = MAX_HEAD_BYTES + 1024
#: Seconds an idle caller connection stays open: longer than a gateway's own keep-alive
#: (nginx's upstream default is 60 s), so the gateway, not the service, closes idle connections.
KEEP_ALIVE_SECONDS = 75
#: Seconds a stopping server waits for requests under way.
GRACEFUL_SECONDS = 5


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol (llhttp, about three times h11's decisions per second
    here), bounded: llhttp sets no limit on a request head, so bytes received while a head is
    incomplete are counted and past :data:`MAX_INCOMPLETE_HEAD_BYTES` the connection is answered
    431 and closed. What is buffered stays under the bound plus one read."""

    _in_head = False
    _head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_INCOMPLETE_HEAD_BYTES:
            self._in_head = False
            self.transport.write(_HEAD_TOO_LARGE)
            self.transport.close()


_TOO_LARGE_BODY = b'{"error":"request headers too large"}'
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _TOO_LARGE_BODY
)

#: An HTTP protocol for uvicorn: a protocol class, or the name of one of uvicorn's.
HttpProtocol = type[asyncio.Protocol] | HTTPProtocolType
#: The one the service runs: llhttp through ``httptools``, bounded (``"h11"`` works too).
HTTP_PARSER: HttpProtocol = BoundedHttpToolsProtocol


class _CountingRegistry(AccessRegistry):
    """The access registry, counting full snapshots (the first, and one per ``epoch``: rows
    deleted) and remembering how many grants the last one held."""

    grants_in_snapshot = 0
    snapshots = 0

    def snapshot(self) -> Snapshot:
        snap = super().snapshot()
        self.snapshots += 1
        self.grants_in_snapshot = sum(1 for g in snap.grants if g.status != "revoked")
        return snap


class AccessService:
    """One access service: the registry it reads, the view it answers from, the ASGI app.

    :meth:`open` reads the first snapshot (at 100,000 grants about a second); :meth:`start`
    starts following the registry; :meth:`close` stops and releases everything.
    """

    def __init__(self, settings: ServiceSettings, registry: _CountingRegistry) -> None:
        self.settings = settings
        self.registry = registry
        checker = AccessChecker(registry)
        self.view = LiveView(
            checker,
            poll=settings.poll,
            staleness=settings.staleness,
            on_poll=settings.auth.reload_if_changed,
        )
        self.edge_log = EdgeLog(settings.log_file, allow_sample=settings.allow_sample)
        self.app = DecisionApp(self.view, settings.auth, self.edge_log)

    @classmethod
    def open(cls, settings: ServiceSettings) -> AccessService:
        """Open the registry and read the first snapshot.

        Raises:
            RegistryError: the registry cannot be read.
            ConfigError: the edge log cannot be opened.
        """
        registry = _CountingRegistry(settings.registry_url)
        try:
            return cls(settings, registry)
        except OSError as err:
            registry.close()
            raise ConfigError(
                f"access service: cannot open log_file {settings.log_file} ({err.strerror})"
            ) from None
        except BaseException:
            registry.close()
            raise

    @property
    def grants(self) -> int:
        """Grants (active or suspended) in the first snapshot."""
        return self.registry.grants_in_snapshot

    def start(self) -> None:
        self.view.start()

    def close(self) -> None:
        self.view.stop()
        self.edge_log.close()
        self.registry.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: any free port).

    Raises:
        ConfigError: (one line) the address cannot be resolved or is taken.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ConfigError(f"access service: cannot resolve {host!r} ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"access service: cannot listen on {host}:{port} ({err.strerror})"
        ) from None
    return sock


class AccessServer(EmbeddableServer):
    """The access service's uvicorn server (see
    :class:`gatekeeper.asgi_server.EmbeddableServer`), telling when it accepts connections."""

    def __init__(self, config: uvicorn.Config, *, own_signals: bool = True) -> None:
        super().__init__(config, own_signals=own_signals)
        #: Called once the server accepts connections.
        self.on_started: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()


@dataclass(frozen=True)
class Running:
    """A service that answers: what :func:`run_service` hands ``on_ready``."""

    service: AccessService
    server: AccessServer
    host: str
    port: int

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.service.settings.scheme}://{shown}:{self.port}"

    @property
    def ready_line(self) -> str:
        """``access service listening on http://HOST:PORT (view seq N, G grants)``."""
        return (
            f"access service listening on {self.url} "
            f"(view seq {self.service.view.seq}, {self.service.grants} grants)"
        )


def server_for(
    service: AccessService, *, own_signals: bool = True, http: HttpProtocol = HTTP_PARSER
) -> AccessServer:
    """A uvicorn server for ``service`` (TLS and mTLS as its settings say), loaded.

    Raises:
        ConfigError: (one line) a TLS file cannot be loaded.
    """
    settings = service.settings
    config = uvicorn.Config(
        service.app,
        http=http,
        ws="none",
        lifespan="off",
        interface="asgi3",
        log_level="warning",
        log_config=None,  # the process's logging (gatekeeper.logging) stays as it is
        access_log=False,  # the edge log is the access log
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        h11_max_incomplete_event_size=MAX_INCOMPLETE_HEAD_BYTES,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        ssl_ca_certs=settings.client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if settings.client_ca is not None else ssl.CERT_NONE,
    )
    try:
        config.load()
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(f"access service: cannot load the TLS files ({err})") from None
    return AccessServer(config, own_signals=own_signals)


async def run_service(
    settings: ServiceSettings,
    *,
    on_ready: Callable[[Running], None],
    own_signals: bool = True,
    http: HttpProtocol = HTTP_PARSER,
) -> None:
    """Open the service, listen, call ``on_ready`` once it answers, and serve until stopped (a
    signal, or :meth:`AccessServer.stop`).

    Raises:
        ConfigError: (one line, before anything listens) see :func:`listen`, :func:`server_for`.
        RegistryError: the registry cannot be read for the first snapshot.
    """
    sock = listen(settings.host, settings.port)
    try:
        service = await asyncio.to_thread(AccessService.open, settings)
    except BaseException:
        sock.close()
        raise
    try:
        server = server_for(service, own_signals=own_signals, http=http)
        service.start()
        running = Running(service, server, settings.host, sock.getsockname()[1])
        server.on_started = lambda: on_ready(running)
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        service.close()

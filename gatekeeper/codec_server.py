"""The codec server: lets the Temporal UI and CLI show encrypted payloads to authorised operators.

It speaks Temporal's remote codec protocol: ``POST /decode`` and ``POST /encode`` take
``{"payloads": [...]}`` (payloads in protobuf JSON: base64 ``metadata`` values and ``data``) and
answer in the same shape. The browser calls it directly from the UI's origin, so it answers CORS
preflights for the origins it is told to trust; with a token configured every call must carry
``Authorization: Bearer <token>``. Built on aiohttp.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from gatekeeper.errors import GatekeeperError

log = structlog.get_logger(__name__)

#: Origins of the Temporal UI that ``gatekeeper dev`` and the compose stack serve.
DEFAULT_UI_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233", "http://localhost:8080")
#: A history event may carry payloads of a few MiB; anything far larger is not a codec call.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Headers the UI and the CLI send with a codec call.
_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    codec: PayloadCodec,
    *,
    origins: Sequence[str] = DEFAULT_UI_ORIGINS,
    token: str | None = None,
) -> web.Application:
    """The codec server's aiohttp application.

    Args:
        codec: encodes and decodes the payloads (the same codec workers and clients use).
        origins: browser origins allowed to call it (the Temporal UI's address); ``*`` allows
            any origin, which is only sensible together with a token.
        token: bearer token every call must present; ``None`` asks for none.
    """
    allowed = frozenset(o.rstrip("/") for o in origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as err:  # unknown path or method: still answer with CORS
                response = _error(err.status, err.reason)
        if origin and ("*" in allowed or origin in allowed):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
            response.headers["Vary"] = "Origin"
        return response

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Preflights carry no credentials by design; health checks need none.
        if token is None or request.method == "OPTIONS" or request.path == "/healthz":
            return await handler(request)
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            log.warning("codec call refused", path=request.path, remote=request.remote)
            return _error(401, "a valid 'Authorization: Bearer <token>' header is required")
        return await handler(request)

    async def decode(request: web.Request) -> web.Response:
        return await _transcode(request, codec.decode)

    async def encode(request: web.Request) -> web.Response:
        return await _transcode(request, codec.encode)

    async def healthz(request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[cors, auth], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/decode", decode)
    app.router.add_post("/encode", encode)
    app.router.add_get("/healthz", healthz)
    return app


async def _transcode(
    request: web.Request,
    operation: Callable[[Sequence[Payload]], Awaitable[list[Payload]]],
) -> web.Response:
    try:
        body = await request.json()
        payloads = json_format.ParseDict(body, Payloads())
    except (json.JSONDecodeError, json_format.ParseError, TypeError, ValueError) as err:
        return _error(400, f"expected {{'payloads': [...]}} in protobuf JSON: {err}")
    try:
        result = await operation(payloads.payloads)
    except GatekeeperError as err:
        log.warning("codec call failed", path=request.path, error=str(err))
        return _error(422, str(err))
    log.debug(
        "codec call",
        path=request.path,
        namespace=request.headers.get("X-Namespace"),
        payloads=len(result),
    )
    return web.json_response(json_format.MessageToDict(Payloads(payloads=result)))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` for the duration of the block; yields its base URL.

    Port 0 picks a free port (the URL names the real one).
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()

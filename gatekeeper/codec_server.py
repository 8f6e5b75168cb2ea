"""The codec server: lets the Temporal UI and CLI show encrypted (and compressed) payloads to
authorised operators.

It speaks Temporal's remote codec protocol: ``POST /decode`` and ``POST /encode`` take
``{"payloads": [...]}`` (payloads in protobuf JSON: base64 ``metadata`` values and ``data``) and
answer in the same shape. Built on aiohttp.

Whoever can call ``/decode`` reads every release's payloads, so:

* every call but the CORS preflight and ``/healthz`` must carry ``Authorization: Bearer <token>``
  (compared in constant time); a server with no token may only listen on loopback
  (:func:`check_bind`, run before any socket is opened), where only this machine reaches it;
* the browser calls it directly from the Temporal UI's page, so it answers CORS (preflight
  included) for the configured UI origins only, never ``*``; any other origin gets no CORS
  header, so a page elsewhere cannot read an answer;
* bodies over :data:`MAX_BODY_BYTES` are refused with 413 before any decoding.

Plaintext payloads pass through ``/decode`` as they are (they are stored in the clear anyway);
refusing them is the workers' business (:mod:`gatekeeper.codec`). Compressed payloads are
inflated (within the same bound as the workers', :mod:`gatekeeper.compression`); one that does
not inflate is answered with 422 naming why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import structlog
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from gatekeeper.codec import EncryptionCodec
from gatekeeper.compression import CodecChain, CompressionCodec
from gatekeeper.egress import is_loopback
from gatekeeper.errors import GatekeeperError, InputError

log = structlog.get_logger(__name__)

#: The UI origins trusted when none is configured: the dev server's UI (``gatekeeper dev``).
DEFAULT_UI_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
#: A history event's payloads stay under Temporal's 2 MiB blob limit each; a codec call of a few
#: of them fits well within this, anything larger is refused (413) unread.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Shortest bearer token accepted: the server does not slow down guessing.
MIN_TOKEN_CHARS = 16
#: Where a server without a token may listen: this machine only.
#: Headers the UI and the CLI send with a codec call.
_ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
#: Key of the application's token flag, read by :func:`serve`.
_HAS_TOKEN = web.AppKey("has_token", bool)


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve without a token anywhere but on loopback, or with a guessable token;
    call before opening a socket.

    Raises:
        InputError: no token and ``host`` is not a loopback address, or the token is shorter
            than :data:`MIN_TOKEN_CHARS`.
    """
    if token is not None and len(token.strip()) < MIN_TOKEN_CHARS:
        raise InputError(
            f"GATEKEEPER_CODEC_SERVER_TOKEN is too short to resist guessing: use at least "
            f"{MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 24`)"
        )
    if token is None and not is_loopback(host):
        shown = host or "all addresses"
        raise InputError(
            f"the codec server decrypts for whoever can reach it: set "
            f"GATEKEEPER_CODEC_SERVER_TOKEN to listen on {shown}, or listen on loopback "
            "(--host 127.0.0.1)"
        )


def check_origin(origin: str) -> str:
    """``origin`` as a CORS origin (``scheme://host[:port]``, no path, never ``*``).

    Raises:
        InputError: the origin is a wildcard or not of that form.
    """
    cleaned = origin.strip().rstrip("/")
    if not _ORIGIN.match(cleaned):
        raise InputError(
            f"codec server CORS origin {origin!r} must be the Temporal UI's "
            "'http(s)://host[:port]' (no wildcard, no path)"
        )
    return cleaned


def create_app(
    codec: PayloadCodec,
    *,
    origins: Sequence[str] = DEFAULT_UI_ORIGINS,
    token: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> web.Application:
    """The codec server's aiohttp application.

    Args:
        codec: encodes and decodes the payloads (the workers' codec, usually
            :func:`~gatekeeper.codec.payload_codec`'s chain, used for display: plaintext shown
            as it is, a payload that does not decrypt or inflate answered with 422 naming why).
        origins: browser origins allowed to call it (the Temporal UI's address); no wildcard.
        token: bearer token every call must present; ``None`` asks for none, and then
            :func:`serve` listens on loopback only.
        max_body_bytes: larger request bodies are refused with 413.

    Raises:
        InputError: an origin is a wildcard or malformed, or the token is too short.
    """
    allowed = frozenset(check_origin(o) for o in origins)
    if isinstance(codec, EncryptionCodec | CompressionCodec | CodecChain):
        codec = codec.for_display()
    if token is not None:
        check_bind("127.0.0.1", token)  # its strength; where it listens is serve's check
    expected = _digest(f"Bearer {token}") if token is not None else b""

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
        if origin and origin in allowed:
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
        # Digests of equal length, compared in constant time: neither content nor length leaks.
        if not hmac.compare_digest(_digest(presented), expected):
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

    app = web.Application(middlewares=[cors, auth], client_max_size=max_body_bytes)
    app[_HAS_TOKEN] = token is not None
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


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", errors="surrogateescape")).digest()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@asynccontextmanager
async def serve(app: web.Application, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` for the duration of the block; yields its base URL.

    Port 0 picks a free port (the URL names the real one).

    Raises:
        InputError: ``app`` has no token and ``host`` is not loopback (checked before binding).
    """
    if not app.get(_HAS_TOKEN):
        check_bind(host, None)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        yield f"http://{shown}:{bound}"
    finally:
        await runner.cleanup()

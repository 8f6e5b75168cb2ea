"""The decision API as one bare ASGI callable: no framework, no per-request models.

A request is answered synchronously on the event loop from the in-memory view (a few dictionary
look-ups): header names are matched against one precomputed table in a single pass, inputs are
checked with precompiled patterns, and the answer is encoded with the standard library's C JSON
encoder. Nothing here waits for the database. See :mod:`gatekeeper.access_service` for the API.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from gatekeeper.access_service.edge_log import EdgeLog
from gatekeeper.access_service.settings import CallerAuth
from gatekeeper.access_service.view import LiveView
from gatekeeper.models.enums import Surface

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

#: Where decisions are asked; any path under it too (Envoy ext_authz appends the request's path).
DECISION_PATH = "/v1/decision"
#: The largest request head (path, query and headers) and the most headers a decision request
#: may carry; larger ones are refused with 431 before anything is read from them.
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
_TOO_LARGE = (
    f"request headers too large (at most {MAX_HEADERS} headers, {MAX_HEAD_BYTES // 1024} KiB)"
)
#: Rules the service decides itself, besides the registry's (:class:`gatekeeper.access.AccessRule`).
INVALID_REQUEST = "invalid_request"
FAIL_CLOSED = "fail_closed"

PERSON_HEADER = "X-Gatekeeper-Person"
MODEL_HEADER = "X-Gatekeeper-Model"
VERSION_HEADER = "X-Gatekeeper-Version"
SURFACE_HEADER = "X-Gatekeeper-Surface"
TOKEN_HEADER = "X-Gatekeeper-Gateway-Token"
REQUEST_ID_HEADER = "X-Request-Id"

_PERSON, _MODEL, _VERSION, _SURFACE, _TOKEN, _REQUEST_ID = range(6)
#: The inputs' names as headers and as query parameters, by slot.
_INPUTS = ((PERSON_HEADER, "person"), (MODEL_HEADER, "model"), (VERSION_HEADER, "version"),
           (SURFACE_HEADER, "surface"))  # fmt: skip
_HEADER_SLOTS = {
    name.lower().encode("ascii"): slot
    for slot, name in enumerate(
        (PERSON_HEADER, MODEL_HEADER, VERSION_HEADER, SURFACE_HEADER, TOKEN_HEADER,
         REQUEST_ID_HEADER)
    )
}  # fmt: skip
_QUERY_SLOTS = {query: slot for slot, (_, query) in enumerate(_INPUTS)}

#: A registry id (person, model): as :data:`gatekeeper.models.base.Identifier`.
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: A model version: printable ASCII, no leading or trailing space, at most 200 characters.
_VERSION_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")
_REQUEST_ID_TEXT = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
_SURFACES = frozenset(s.value for s in Surface)
_SURFACE_LIST = ", ".join(s.value for s in Surface)
_ID_TEXT = "1-64 characters a-z 0-9 . _ -, starting with a letter or digit"

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode

_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")
_ALLOW = (b"x-gatekeeper-decision", b"allow")
_DENY = (b"x-gatekeeper-decision", b"deny")


class _Refusal(Exception):
    """A request refused before any decision: 401 (caller or user not authenticated) or 403
    ``invalid_request``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bytes_body(payload: dict[str, object]) -> bytes:
    return _encode(payload).encode("ascii")


def _fixed(status: int, payload: dict[str, object]) -> tuple[int, Headers, bytes]:
    body = _bytes_body(payload)
    return status, [_JSON, _NO_STORE, (b"content-length", str(len(body)).encode())], body


_NOT_FOUND = _fixed(404, {"error": f"no such path; decisions are asked at {DECISION_PATH}"})
_HEALTHY = _fixed(200, {"status": "ok"})
_READY = _fixed(200, {"status": "ready"})
_NOT_READY = _fixed(503, {"status": "not ready: access view not confirmed current"})


class DecisionApp:
    """The ASGI application: ``/v1/decision[/...]``, ``/healthz``, ``/readyz``.

    Args:
        view: the live view of the registry.
        auth: the caller tokens; checked when it holds any.
        edge_log: where denies and sampled allows are written.
    """

    def __init__(self, view: LiveView, auth: CallerAuth, edge_log: EdgeLog) -> None:
        self.view = view
        self.auth = auth
        self.edge_log = edge_log
        self._clock = time.monotonic
        self._rule_headers: dict[str, tuple[bytes, bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # the server runs without lifespan and websockets
        path: str = scope["path"]
        if path == DECISION_PATH or path.startswith("/v1/decision/"):
            status, headers, body = self.decide(scope)
        elif path == "/healthz":
            status, headers, body = _HEALTHY
        elif path == "/readyz":
            stale = self.view.stale_reason(self._clock()) is not None
            status, headers, body = _NOT_READY if stale else _READY
        else:
            status, headers, body = _NOT_FOUND
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _rule_header(self, rule: str) -> tuple[bytes, bytes]:
        header = self._rule_headers.get(rule)
        if header is None:
            header = self._rule_headers[rule] = (b"x-gatekeeper-rule", rule.encode("ascii"))
        return header

    def decide(self, scope: Scope) -> tuple[int, Headers, bytes]:
        """Answer one decision request (synchronously, from the in-memory view)."""
        found: list[bytes | None] = [None, None, None, None, None, None]
        repeated: int | None = None
        slots = _HEADER_SLOTS
        headers: Headers = scope["headers"]
        size = len(scope["raw_path"]) + len(scope["query_string"])
        for name, value in headers:
            size += len(name) + len(value)
            slot = slots.get(name)
            if slot is not None:
                if found[slot] is not None and repeated is None:
                    repeated = slot
                found[slot] = value
        if size > MAX_HEAD_BYTES or len(headers) > MAX_HEADERS:
            # The server bounds what it buffers; this bounds what it lets through.
            return self._refuse(431, _TOO_LARGE, None)
        raw_id = found[_REQUEST_ID]
        request_id = (
            raw_id.decode("ascii")
            if raw_id is not None and repeated != _REQUEST_ID and _REQUEST_ID_TEXT.fullmatch(raw_id)
            else None
        )
        if self.auth.enabled and (repeated == _TOKEN or not self.auth.accepts(found[_TOKEN])):
            reason = f"a valid {TOKEN_HEADER} header is required (the calling gateway's token)"
            return self._refuse(401, reason, request_id)
        values: list[str | None] = [None, None, None, None]
        try:
            if repeated is not None and repeated < _TOKEN:
                raise _Refusal(403, f"{_INPUTS[repeated][0]} given more than once")
            for slot in range(4):
                raw = found[slot]
                if raw:
                    try:
                        values[slot] = raw.decode("ascii")
                    except UnicodeDecodeError:
                        raise _Refusal(403, f"{_INPUTS[slot][0]} is not ASCII") from None
            query: bytes = scope["query_string"]
            if query:
                self._merge_query(query, values)
            person, model, version, surface = values
            if not person:
                raise _Refusal(
                    401,
                    f"no {PERSON_HEADER}: the gateway did not say who the user is "
                    "(authenticate them at the gateway)",
                )
            if _ID.fullmatch(person) is None:
                values[_PERSON] = None
                raise _Refusal(403, f"{PERSON_HEADER} must be a person id ({_ID_TEXT})")
            if not model:
                raise _Refusal(403, f"no {MODEL_HEADER} (the model asked for)")
            if _ID.fullmatch(model) is None:
                values[_MODEL] = None
                raise _Refusal(403, f"{MODEL_HEADER} must be a model name ({_ID_TEXT})")
            if version is not None and _VERSION_TEXT.fullmatch(version) is None:
                values[_VERSION] = None
                raise _Refusal(
                    403,
                    f"{VERSION_HEADER} must be 1-200 printable ASCII characters without "
                    "leading or trailing spaces",
                )
            if surface is None:
                surface = values[_SURFACE] = Surface.API.value
            elif surface not in _SURFACES:
                values[_SURFACE] = None
                raise _Refusal(403, f"{SURFACE_HEADER} must be one of {_SURFACE_LIST}")
        except _Refusal as refusal:
            if refusal.status == 401:
                return self._refuse(401, refusal.reason, request_id)
            return self._answer(
                False, INVALID_REQUEST, refusal.reason, None, None, values, request_id
            )
        view = self.view
        now = self._clock()
        stale = view.stale_reason(now)
        if stale is not None:
            return self._answer(False, FAIL_CLOSED, stale, None, None, values, request_id, now)
        decision = view.checker.check(model, person, surface, version)
        return self._answer(
            decision.allowed,
            decision.rule.value,
            decision.reason,
            decision.order_id,
            decision.grant_id,
            values,
            request_id,
            now,
        )

    @staticmethod
    def _merge_query(query: bytes, values: list[str | None]) -> None:
        """Take inputs from the query string; other parameters (the original request's, which
        Envoy passes on) are ignored, and never a token."""
        seen: set[int] = set()
        for key, value in parse_qsl(
            query.decode("latin-1"), keep_blank_values=True, max_num_fields=64
        ):
            slot = _QUERY_SLOTS.get(key)
            if slot is None:
                continue
            header, name = _INPUTS[slot]
            if slot in seen:
                raise _Refusal(403, f"query parameter {name!r} given more than once")
            seen.add(slot)
            current = values[slot]
            if current is None:
                values[slot] = value or None
            elif current != value:
                raise _Refusal(
                    403, f"{header} and the query parameter {name!r} disagree; give one of them"
                )

    def _refuse(
        self, status: int, reason: str, request_id: str | None
    ) -> tuple[int, Headers, bytes]:
        self.edge_log.refused(status=status, reason=reason, request_id=request_id)
        body = _bytes_body({"error": reason})
        return status, [_JSON, _NO_STORE, (b"content-length", str(len(body)).encode()), _DENY], body

    def _answer(
        self,
        allowed: bool,
        rule: str,
        reason: str,
        order_id: str | None,
        grant_id: str | None,
        values: list[str | None],
        request_id: str | None,
        now: float | None = None,
    ) -> tuple[int, Headers, bytes]:
        view = self.view
        seq = view.seq
        age = (self._clock() if now is None else now) - view.confirmed_at
        person, model, version, surface = values
        body = _bytes_body(
            {
                "decision": "allow" if allowed else "deny",
                "rule": rule,
                "reason": reason,
                "order_id": order_id,
                "grant_id": grant_id,
                "person": person,
                "model": model,
                "version": version,
                "surface": surface,
                "view_seq": seq,
                "view_age_ms": round(age * 1000),
            }
        )
        headers = [
            _JSON,
            _NO_STORE,
            (b"content-length", str(len(body)).encode()),
            _ALLOW if allowed else _DENY,
            self._rule_header(rule),
        ]
        if order_id is not None:
            headers.append((b"x-gatekeeper-order", order_id.encode("ascii", "replace")))
        log = self.edge_log
        if not allowed or log.wants_allow():
            log.decision(
                allowed=allowed,
                rule=rule,
                reason=reason,
                order_id=order_id,
                grant_id=grant_id,
                person=person,
                model=model,
                version=version,
                surface=surface,
                view_seq=seq,
                request_id=request_id,
            )
        return (200 if allowed else 403), headers, body

"""Attacks on the access-decision service (``gatekeeper access serve``), over real HTTP against
a real service and registry: forged and misplaced gateway tokens, a second person header
smuggled in, inputs from the query string overriding the gateway's, path tricks, huge headers.
Each is refused before any decision, says so in one line, and allows nothing."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.access_service.server import Running
from gatekeeper.access_service.settings import ServiceSettings
from gatekeeper.adapters.registry import AccessRegistry
from tests.access_service.conftest import build_world
from tests.access_service.service import TOKEN, edge_lines, gateway, running, service_settings
from tests.databases import sqlite_url

TOKEN_ERROR = "a valid X-Gatekeeper-Gateway-Token header is required (the calling gateway's token)"


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    url = sqlite_url(tmp_path / "registry.db")
    with AccessRegistry(url) as registry:
        build_world(registry)
    return service_settings(url, tmp_path, allow_sample=1.0)


@pytest.fixture
def service(settings: ServiceSettings) -> Iterator[Running]:
    with running(settings) as handle:
        yield handle


@dataclass(frozen=True)
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        loaded = json.loads(self.body)
        assert isinstance(loaded, dict)
        return loaded


def raw_request(handle: Running, head: str, *, max_bytes: int = 1 << 20) -> Raw | None:
    """Send ``head`` (the request line and headers, exactly as written, CRLF-joined) and read
    the answer; ``None`` if the server closed the connection without one."""
    request = head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = b""
        try:
            while len(received) < max_bytes:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    if not received:
        return None
    top, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Raw(int(status_line.split()[1]), headers, body)


def decision_head(path: str = "/v1/decision", *extra: str, token: str | None = TOKEN) -> str:
    lines = [f"GET {path} HTTP/1.1", "Host: access", "Connection: close"]
    if token is not None:
        lines.append(f"X-Gatekeeper-Gateway-Token: {token}")
    return "\n".join([*lines, *extra])


class TestForgedCallers:
    """Only the gateway's token, in its header, lets a caller ask: a forged, partial, doubled
    or misplaced token (query string, Authorization) is a 401 and no decision is made."""

    @pytest.mark.parametrize(
        "sent",
        [
            [],
            ["X-Gatekeeper-Gateway-Token: forged-token-0123456789abc"],
            [f"X-Gatekeeper-Gateway-Token: {TOKEN[:-1]}"],
            [f"Authorization: Bearer {TOKEN}"],
            [
                f"X-Gatekeeper-Gateway-Token: {TOKEN}",
                "X-Gatekeeper-Gateway-Token: forged-0123456789",
            ],
            [
                "X-Gatekeeper-Gateway-Token: forged-0123456789abc",
                f"x-gatekeeper-gateway-token: {TOKEN}",
            ],
            [f"X_Gatekeeper_Gateway_Token: {TOKEN}"],
        ],
    )
    def test_refused(self, service: Running, settings: ServiceSettings, sent: list[str]) -> None:
        answer = raw_request(
            service,
            decision_head(
                "/v1/decision", "X-Gatekeeper-Person: alice", "X-Gatekeeper-Model: aurora",
                *sent, token=None,
            ),
        )  # fmt: skip
        assert answer is not None
        assert answer.status == 401
        assert answer.json() == {"error": TOKEN_ERROR}
        lines = edge_lines(settings)
        assert [line["event"] for line in lines] == ["access_refused"]
        assert TOKEN not in json.dumps(lines) and "forged" not in json.dumps(lines)

    @pytest.mark.parametrize(
        "query",
        [
            f"token={TOKEN}",
            f"gateway_token={TOKEN}",
            f"X-Gatekeeper-Gateway-Token={TOKEN}",
            f"x-gatekeeper-gateway-token={TOKEN}",
        ],
    )
    def test_token_in_the_query_string(self, service: Running, query: str) -> None:
        with gateway(service, token=None) as gw:
            answer = gw.client.get(
                f"/v1/decision?person=alice&model=aurora&{query}",
            )
        assert answer.status_code == 401
        assert answer.json() == {"error": TOKEN_ERROR}


class TestSmuggledPerson:
    """The person is the gateway's to say: a second person header (whichever comes first, in any
    letter case), a query parameter disagreeing with the header, or an underscore look-alike of
    the header never makes the service answer for another person."""

    @pytest.mark.parametrize(
        "people",
        [
            ["X-Gatekeeper-Person: bruno", "X-Gatekeeper-Person: alice"],
            ["X-Gatekeeper-Person: alice", "X-Gatekeeper-Person: bruno"],
            ["X-Gatekeeper-Person: bruno", "x-gatekeeper-PERSON: alice"],
            ["X-Gatekeeper-Person: bruno", "X-Gatekeeper-Person: bruno"],
        ],
    )
    def test_second_person_header(
        self, service: Running, settings: ServiceSettings, people: list[str]
    ) -> None:
        answer = raw_request(
            service, decision_head("/v1/decision", *people, "X-Gatekeeper-Model: aurora")
        )
        assert answer is not None
        assert answer.status == 403
        body = answer.json()
        assert body["rule"] == "invalid_request"
        assert body["reason"] == "X-Gatekeeper-Person given more than once"
        assert body["person"] is None
        [line] = edge_lines(settings)
        assert (line["decision"], line["rule"], line["person"]) == ("deny", "invalid_request", None)

    def test_second_model_header(self, service: Running) -> None:
        answer = raw_request(
            service,
            decision_head(
                "/v1/decision", "X-Gatekeeper-Person: alice", "X-Gatekeeper-Model: nova",
                "X-Gatekeeper-Model: aurora",
            ),
        )  # fmt: skip
        assert answer is not None and answer.status == 403
        assert answer.json()["reason"] == "X-Gatekeeper-Model given more than once"

    @pytest.mark.parametrize(
        "query", ["person=alice", "person=alice&person=bruno", "person=bruno&person=alice"]
    )
    def test_query_overriding_the_header(self, service: Running, query: str) -> None:
        """Envoy passes the original request's query on: a user's ``?person=alice`` must not
        stand in for the person the gateway authenticated."""
        with gateway(service) as gw:
            answer = gw.ask("bruno", path=f"/v1/decision/v1/chat?{query}")
        assert answer.status_code == 403
        assert answer.json()["rule"] == "invalid_request"

    def test_underscore_look_alike(self, service: Running) -> None:
        answer = raw_request(
            service,
            decision_head(
                "/v1/decision", "X_Gatekeeper_Person: alice", "X-Gatekeeper-Model: aurora"
            ),
        )
        assert answer is not None and answer.status == 401
        assert "no X-Gatekeeper-Person" in answer.json()["error"]


class TestPaths:
    """Only /v1/decision and paths under it decide, always behind the token; /healthz and
    /readyz are matched exactly and say nothing; dot segments and encodings do not turn one
    into the other."""

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/decision/../healthz",
            "/v1/decision/..%2Fhealthz",
            "/v1/decision/%2e%2e/readyz",
            "/v1/decision/../../readyz",
        ],
    )
    def test_decision_paths_stay_behind_the_token(self, service: Running, path: str) -> None:
        answer = raw_request(service, decision_head(path, "X-Gatekeeper-Person: alice", token=None))
        assert answer is not None
        assert answer.status == 401
        assert answer.json() == {"error": TOKEN_ERROR}

    @pytest.mark.parametrize(
        "path",
        [
            "/healthz/../v1/decision",
            "/readyz/../v1/decision",
            "//v1/decision",
            "/v1/decisions",
            "/v1/decision.json",
            "/V1/DECISION",
            "/v1//decision",
            "/x/../v1/decision",
        ],
    )
    def test_other_paths_decide_nothing(self, service: Running, path: str) -> None:
        answer = raw_request(
            service,
            decision_head(path, "X-Gatekeeper-Person: alice", "X-Gatekeeper-Model: aurora"),
        )
        assert answer is not None
        assert answer.status == 404
        assert "decision" not in answer.headers.get("x-gatekeeper-decision", "")
        assert set(answer.json()) == {"error"}

    @pytest.mark.parametrize("path", ["/healthz", "/readyz"])
    def test_health_carries_no_decision(self, service: Running, path: str) -> None:
        answer = raw_request(
            service,
            decision_head(path, "X-Gatekeeper-Person: alice", "X-Gatekeeper-Model: aurora"),
        )
        assert answer is not None and answer.status == 200
        assert "x-gatekeeper-decision" not in answer.headers
        assert set(answer.json()) == {"status"}


class TestHugeInput:
    """A request head over 16 KiB or with over 100 headers is refused (431, or by the server
    before the application sees it) without a decision, and the service goes on answering; an
    oversized person or model is a one-line invalid_request."""

    @pytest.mark.parametrize("size", [17_000, 60_000, 200_000, 2_000_000])
    def test_huge_header(self, service: Running, settings: ServiceSettings, size: int) -> None:
        answer = raw_request(
            service,
            decision_head(
                "/v1/decision", "X-Gatekeeper-Person: alice", "X-Gatekeeper-Model: aurora",
                f"X-Padding: {'a' * size}",
            ),
        )  # fmt: skip
        assert answer is None or answer.status in (400, 431)
        assert not [line for line in edge_lines(settings) if line["event"] == "access_decision"]
        with gateway(service) as gw:
            assert gw.ask("alice").status_code == 200

    def test_many_headers(self, service: Running, settings: ServiceSettings) -> None:
        padding = [f"X-Pad-{i}: {'b' * 40}" for i in range(1000)]
        answer = raw_request(
            service,
            decision_head("/v1/decision", "X-Gatekeeper-Person: alice", *padding),
        )
        assert answer is not None and answer.status == 431
        assert answer.json() == {"error": "request headers too large (at most 100 headers, 16 KiB)"}
        assert [line["event"] for line in edge_lines(settings)] == ["access_refused"]

    @pytest.mark.parametrize("name", ["Person", "Model"])
    def test_oversized_id(self, service: Running, name: str) -> None:
        sent = {"Person": "alice", "Model": "aurora"} | {name: "a" * 5000}
        answer = raw_request(
            service,
            decision_head(
                "/v1/decision",
                f"X-Gatekeeper-Person: {sent['Person']}",
                f"X-Gatekeeper-Model: {sent['Model']}",
            ),
        )
        assert answer is not None and answer.status == 403
        body = answer.json()
        assert body["rule"] == "invalid_request"
        assert body["reason"].startswith(f"X-Gatekeeper-{name} must be")
        assert "aaaa" not in json.dumps(body)

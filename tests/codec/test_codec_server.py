"""The codec server over real HTTP: Temporal's /encode and /decode protocol, CORS, bearer auth."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from gatekeeper.codec_server import check_bind, create_app, serve
from gatekeeper.egress import is_loopback
from gatekeeper.errors import InputError
from tests.codec.keys import codec, env_keys
from tests.deploy.cli import admin_command
from tests.workers.helpers import free_ports

UI = "http://localhost:8233"


def body(*payloads: Payload) -> dict[str, object]:
    return json_format.MessageToDict(Payloads(payloads=list(payloads)))


def parse(data: dict[str, object]) -> list[Payload]:
    return list(json_format.ParseDict(data, Payloads()).payloads)


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"model":"aurora"}')


@pytest_asyncio.fixture(loop_scope="session")
async def server() -> AsyncIterator[str]:
    async with serve(create_app(codec(), origins=[UI]), "127.0.0.1", 0) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def guarded() -> AsyncIterator[str]:
    async with serve(
        create_app(codec(), origins=[UI], token="t0ken-long-enough"), "127.0.0.1", 0
    ) as url:
        yield url


class TestProtocol:
    """POST /encode and /decode take and return {"payloads": [...]} in protobuf JSON."""

    async def test_encode_then_decode(self, server: str) -> None:
        async with httpx.AsyncClient(base_url=server) as http:
            encoded = await http.post("/encode", json=body(PLAIN))
            assert encoded.status_code == 200
            [sealed] = parse(encoded.json())
            assert sealed.metadata["encoding"] == b"binary/encrypted"
            decoded = await http.post("/decode", json=encoded.json())
            assert decoded.status_code == 200
            assert parse(decoded.json()) == [PLAIN]

    async def test_decodes_what_workers_encrypted(self, server: str) -> None:
        sealed = await codec().encode([PLAIN, PLAIN])
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.post(
                "/decode", json=body(*sealed), headers={"X-Namespace": "default"}
            )
        assert parse(response.json()) == [PLAIN, PLAIN]

    async def test_malformed_body_is_400(self, server: str) -> None:
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.post("/decode", content=b"not json")
            assert response.status_code == 400
            response = await http.post("/decode", json={"payloads": [{"bogus": 1}]})
            assert response.status_code == 400

    async def test_unknown_key_is_422_naming_it(self, server: str) -> None:
        foreign = codec(active="k9", k9=bytes(32))
        sealed = await foreign.encode([PLAIN])
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.post("/decode", json=body(*sealed))
        assert response.status_code == 422
        assert "'k9'" in response.json()["error"]

    async def test_health(self, server: str) -> None:
        async with httpx.AsyncClient(base_url=server) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}


class TestBrowserAccess:
    """The UI's origin gets CORS answers (preflight included); other origins do not."""

    async def test_preflight_from_ui(self, server: str) -> None:
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.options(
                "/decode",
                headers={
                    "Origin": UI,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
                },
            )
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == UI
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert {"content-type", "x-namespace", "authorization"} <= {
            h.strip() for h in allowed.split(",")
        }
        assert "POST" in response.headers["Access-Control-Allow-Methods"]

    async def test_other_origin_gets_no_cors(self, server: str) -> None:
        async with httpx.AsyncClient(base_url=server) as http:
            response = await http.post(
                "/decode", json=body(PLAIN), headers={"Origin": "https://evil.example"}
            )
        assert "Access-Control-Allow-Origin" not in response.headers


class TestToken:
    """With a token, every call but the preflight and the health check needs the bearer token."""

    async def test_missing_and_wrong_token_refused(self, guarded: str) -> None:
        async with httpx.AsyncClient(base_url=guarded) as http:
            missing = await http.post("/decode", json=body(PLAIN), headers={"Origin": UI})
            wrong = await http.post(
                "/decode", json=body(PLAIN), headers={"Authorization": "Bearer nope"}
            )
        assert missing.status_code == 401 and wrong.status_code == 401
        # The browser must be able to read the refusal.
        assert missing.headers["Access-Control-Allow-Origin"] == UI

    async def test_right_token_accepted(self, guarded: str) -> None:
        async with httpx.AsyncClient(base_url=guarded) as http:
            response = await http.post(
                "/decode", json=body(PLAIN), headers={"Authorization": "Bearer t0ken-long-enough"}
            )
            preflight = await http.options("/decode", headers={"Origin": UI})
            health = await http.get("/healthz")
        assert response.status_code == 200
        assert preflight.status_code == 204 and health.status_code == 200


class TestGuards:
    """No wildcard origin; no token means loopback only, checked before a socket is opened;
    bodies are bounded."""

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]
    )
    def test_loopback(self, host: str) -> None:
        assert is_loopback(host)
        check_bind(host, None)

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.1", "example.com", "128.0.0.1"])
    def test_not_loopback_needs_a_token(self, host: str) -> None:
        assert not is_loopback(host)
        with pytest.raises(InputError, match="set GATEKEEPER_CODEC_SERVER_TOKEN"):
            check_bind(host, None)
        check_bind(host, "t0ken-long-enough")

    @pytest.mark.parametrize("token", ["short", " " * 20, "x" * 15])
    def test_guessable_token_refused(self, token: str) -> None:
        with pytest.raises(InputError, match="at least 16 characters"):
            check_bind("127.0.0.1", token)
        with pytest.raises(InputError, match="at least 16 characters"):
            create_app(codec(), token=token)

    async def test_serve_checks_before_binding(self) -> None:
        # 192.0.2.1 is not ours: binding there fails with OSError, so InputError proves the
        # check came first.
        with pytest.raises(InputError):
            async with serve(create_app(codec()), "192.0.2.1", 0):
                pass
        with pytest.raises(OSError):
            async with serve(create_app(codec(), token="t0ken-long-enough"), "192.0.2.1", 0):
                pass

    @pytest.mark.parametrize("origin", ["*", "https://*.example", "http://ui/x", "null", ""])
    def test_wildcard_origin_refused(self, origin: str) -> None:
        with pytest.raises(InputError, match="no wildcard"):
            create_app(codec(), origins=[origin])

    async def test_body_limit(self) -> None:
        app = create_app(codec(), origins=[UI], max_body_bytes=1024)
        async with serve(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as http:
            small = await http.post("/encode", json=body(PLAIN))
            big = await http.post(
                "/encode",
                json=body(Payload(metadata={"encoding": b"json/plain"}, data=b"x" * 2048)),
            )
        assert small.status_code == 200
        assert big.status_code == 413 and "payloads" not in big.json()


class TestCommand:
    """``gatekeeper codec-server`` serves the configured keys until SIGTERM, then exits 0."""

    async def test_serves_until_terminated(self, tmp_path: Path) -> None:
        [port] = free_ports(1)
        env = {
            **os.environ,
            "GATEKEEPER_CODEC_KEYS": env_keys(),
            "GATEKEEPER_CODEC_SERVER_TOKEN": "cli-token-long-enough",
            "GATEKEEPER_LOG_FORMAT": "json",
        }
        process = await asyncio.create_subprocess_exec(
            *admin_command("codec-server", "--port", str(port)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            assert process.stdout is not None
            banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert f"http://127.0.0.1:{port}" in banner
            sealed = await codec(active="k1").encode([PLAIN])
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                response = await http.post(
                    "/decode",
                    json=body(*sealed),
                    headers={"Authorization": "Bearer cli-token-long-enough"},
                )
            assert parse(response.json()) == [PLAIN]
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 15) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def test_port_in_use_is_one_line(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            env = {**os.environ, "GATEKEEPER_CODEC_KEYS": env_keys()}
            process = await asyncio.create_subprocess_exec(
                *admin_command("codec-server", "--port", str(port)),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 3
        assert f"cannot listen on 127.0.0.1:{port}" in err.decode()

    async def test_refuses_to_start_without_keys(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_CODEC")}
        process = await asyncio.create_subprocess_exec(
            *admin_command("codec-server"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 3
        assert "no codec keys are configured" in err.decode()

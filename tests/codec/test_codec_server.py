"""The codec server over real HTTP: Temporal's /encode and /decode protocol, CORS, bearer auth."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from gatekeeper.codec_server import create_app, serve
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
    async with serve(create_app(codec(), origins=[UI], token="t0ken"), "127.0.0.1", 0) as url:
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
                "/decode", json=body(PLAIN), headers={"Authorization": "Bearer t0ken"}
            )
            preflight = await http.options("/decode", headers={"Origin": UI})
            health = await http.get("/healthz")
        assert response.status_code == 200
        assert preflight.status_code == 204 and health.status_code == 200


class TestCommand:
    """``gatekeeper codec-server`` serves the configured keys until SIGTERM, then exits 0."""

    async def test_serves_until_terminated(self, tmp_path: Path) -> None:
        [port] = free_ports(1)
        env = {
            **os.environ,
            "GATEKEEPER_CODEC_KEYS": env_keys(),
            "GATEKEEPER_CODEC_SERVER_TOKEN": "cli-token",
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
                    "/decode", json=body(*sealed), headers={"Authorization": "Bearer cli-token"}
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

"""A real gateway in front of a model: Debian's nginx with ``auth_request`` to the access service.

The nginx configuration is the one shipped in ``deploy/nginx/`` (and quoted in docs/access.md):
the test wraps it in a minimal ``nginx.conf`` whose pid file, logs and temporary paths all live
in the test's directory, and maps a bearer token per person to the registry person id (in
production the gateway's SSO/OIDC sets ``$gk_person``). Behind nginx, :class:`ModelEndpoint`
stands in for a model server: it answers 200 with the model named in the path. The access
service is the real ``gatekeeper access serve``, started through the CLI.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.access_service import service_command
from bench.nginx import (
    free_port,
    nginx_path,
    running_nginx,
    wait_for_port,
)
from bench.nginx import nginx_config as shipped_nginx_config

ROOT = Path(__file__).resolve().parents[2]
#: The gateway token nginx presents to the access service (the service's tokens_file holds it).
GATEWAY_TOKEN = "gw-test-3b1f0c9e8d7a6b5c4d3e2f1a"


def nginx_binary() -> str:
    """Debian's nginx (``make system-deps`` installs nginx-light), or skip (fail in CI) saying
    what to install, before any server starts."""
    path = nginx_path()
    if path is None:
        missing = "nginx is not installed (apt-get install -y nginx-light, or make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the gateway tests: {missing}")
        pytest.skip(missing)
    return path


def bearer(person: str) -> str:
    """The test's per-person credential (the gateway's own user authentication)."""
    return f"tok-{person}"


# -- the stand-in model endpoint ---------------------------------------------------------------


class _ModelHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ModelServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.split("?", 1)[0].split("/")
        model = parts[3] if len(parts) > 3 and parts[1:3] == ["v1", "models"] else None
        seen = {
            "model": model,
            "path": self.path,
            "person": self.headers.get("X-Gatekeeper-Person"),
            "token": self.headers.get("X-Gatekeeper-Gateway-Token"),
        }
        self.server.seen.append(seen)
        body = json.dumps({"model": model, "person": seen["person"]}).encode()
        self.send_response(200 if model else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class _ModelServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, str | None]]


class ModelEndpoint:
    """A model server stand-in on loopback: 200 with ``{"model": <name from the path>}``; it
    records what reached it (so a test can show a denied request never did)."""

    def __init__(self) -> None:
        self._server = _ModelServer(("127.0.0.1", 0), _ModelHandler)
        self._server.seen = []
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def seen(self) -> list[dict[str, str | None]]:
        return self._server.seen

    def __enter__(self) -> ModelEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# -- nginx -------------------------------------------------------------------------------------


def nginx_config(
    directory: Path,
    *,
    port: int,
    service_port: int,
    model_port: int,
    people: Mapping[str, str],
    token: str = GATEWAY_TOKEN,
) -> Path:
    """The shipped configuration around the test's ports (:func:`bench.nginx.nginx_config`)."""
    nginx_binary()  # skip (fail in CI) without nginx, before anything is written
    return shipped_nginx_config(
        directory,
        port=port,
        service_port=service_port,
        model_port=model_port,
        people=people,
        token=token,
    )


# -- the access service ------------------------------------------------------------------------


def service_config(directory: Path, *, token: str = GATEWAY_TOKEN) -> Path:
    """The worker configuration file with its ``[access_service]`` section: the gateway's token,
    the edge log, a 50 ms poll (every deny logged, no allow sampled)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = directory / "gateway-tokens"
    tokens.write_text(f"{token}\n")
    tokens.chmod(0o600)
    config = directory / "gatekeeper.toml"
    config.write_text(
        f"""[access_service]
tokens_file = "{tokens}"
log_file = "{directory / "edge.jsonl"}"
poll = 0.05
staleness = 2.0
allow_sample = 0.0
"""
    )
    return config


@dataclass
class AccessService:
    process: subprocess.Popen[str]
    port: int
    log_file: Path
    banner: str

    def edge_log(self) -> list[dict[str, object]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line]


@contextlib.contextmanager
def running_service(config: Path, env: Mapping[str, str]) -> Iterator[AccessService]:
    """Start the service and wait for its one ready line (``access service listening on ...``)."""
    port = free_port()
    process = subprocess.Popen(
        service_command(config, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Only what the test says: no GATEKEEPER_* of the session (another registry, say).
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}, **env},
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline().strip()
        if "listening on" not in banner:
            process.kill()
            _, err = process.communicate(timeout=10)
            raise RuntimeError(f"access service did not start: {banner} {err}")
        wait_for_port(port, 10, process)
        yield AccessService(process, port, config.parent / "edge.jsonl", banner)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=5)


# -- a client of the gateway -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    rule: str | None
    order: str | None
    request_id: str | None
    body: bytes


class GatewayClient:
    """Requests through nginx as the users would send them, over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def request(
        self,
        path: str,
        *,
        person: str | None = None,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        body: bytes = b'{"prompt": "hello"}',
    ) -> Answer:
        sent = dict(headers or {})
        if person is not None:
            sent["Authorization"] = f"Bearer {bearer(person)}"
        for attempt in (1, 2):
            try:
                self._connection.request(method, path, body=body, headers=sent)
                response = self._connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self._connection.close()  # nginx closed the kept-alive connection: once more
                if attempt == 2:
                    raise
        return Answer(
            response.status,
            response.getheader("X-Gatekeeper-Rule") or None,
            response.getheader("X-Gatekeeper-Order") or None,
            response.getheader("X-Request-Id") or None,
            data,
        )

    def use(self, model: str, person: str) -> Answer:
        return self.request(f"/v1/models/{model}/generate", person=person)

    def close(self) -> None:
        self._connection.close()


# -- the whole stack ---------------------------------------------------------------------------


@dataclass
class Gateway:
    """nginx on ``port`` asking ``service`` about every request for ``model`` (the endpoint)."""

    port: int
    service: AccessService
    model: ModelEndpoint
    client: GatewayClient
    directory: Path


@contextlib.contextmanager
def running_gateway(directory: Path, data_dir: Path, people: list[str]) -> Iterator[Gateway]:
    """The model endpoint, the access service over the registry in ``data_dir``, and nginx in
    front of both, each person of ``people`` signing in with :func:`bearer`."""
    nginx_binary()  # skip before anything starts
    config = service_config(directory / "service")
    env = {"GATEKEEPER_DATA_DIR": str(data_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with ModelEndpoint() as model, running_service(config, env) as service:
        port = free_port()
        nginx = nginx_config(
            directory / "nginx",
            port=port,
            service_port=service.port,
            model_port=model.port,
            people={bearer(person): person for person in people},
        )
        with running_nginx(nginx, port):
            client = GatewayClient(port)
            try:
                yield Gateway(port, service, model, client, directory)
            finally:
                client.close()

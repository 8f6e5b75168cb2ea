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
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The shipped configuration: the ``http {}`` part and the ``server {}`` part.
NGINX_DIR = ROOT / "deploy" / "nginx"
HTTP_PART = NGINX_DIR / "gatekeeper-access-http.conf"
SERVER_PART = NGINX_DIR / "gatekeeper-access.conf"
#: Where the shipped files expect the gateway token include; the test points it at its directory.
SHIPPED_DIR = "/etc/nginx/gatekeeper/"
#: The gateway token nginx presents to the access service (the service's tokens_file holds it).
GATEWAY_TOKEN = "gw-test-3b1f0c9e8d7a6b5c4d3e2f1a"


def nginx_binary() -> str:
    """Debian's nginx (``make system-deps`` installs nginx-light), or skip (fail in CI) saying
    what to install, before any server starts."""
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        missing = "nginx is not installed (apt-get install -y nginx-light, or make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the gateway tests: {missing}")
        pytest.skip(missing)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, within: float, process: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {within} s")
        time.sleep(0.02)


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


def install_shipped_config(directory: Path, *, token: str = GATEWAY_TOKEN) -> tuple[Path, Path]:
    """Copy the shipped parts into ``directory`` (the token include pointed at it) and write the
    gateway token include; returns the http and server parts."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = []
    for shipped in (HTTP_PART, SERVER_PART):
        copy = directory / shipped.name
        copy.write_text(shipped.read_text().replace(SHIPPED_DIR, f"{directory}/"))
        parts.append(copy)
    token_file = directory / "gateway-token.conf"
    token_file.write_text(f'proxy_set_header X-Gatekeeper-Gateway-Token "{token}";\n')
    token_file.chmod(0o600)
    return parts[0], parts[1]


def nginx_config(
    directory: Path,
    *,
    port: int,
    service_port: int,
    model_port: int,
    people: Mapping[str, str],
    token: str = GATEWAY_TOKEN,
) -> Path:
    """Write ``directory/nginx.conf``: one process in the foreground, everything it writes under
    ``directory``, listening on ``port``; ``people`` maps a bearer token to a person id."""
    http_part, server_part = install_shipped_config(directory, token=token)
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / temp).mkdir(exist_ok=True)
    person_map = "\n".join(
        f'        "Bearer {credential}" {person};' for credential, person in people.items()
    )
    config = directory / "nginx.conf"
    config.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    # The gateway's own user authentication (production: its SSO/OIDC module).
    map $http_authorization $gk_person {{
        default "";
{person_map}
    }}
    upstream gatekeeper_access {{ server 127.0.0.1:{service_port}; keepalive 8; }}
    upstream model_backend {{ server 127.0.0.1:{model_port}; }}
    include {http_part};
    server {{
        listen 127.0.0.1:{port};
        include {server_part};
    }}
}}
"""
    )
    return config


def nginx_test(config: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``config`` (its startup log kept beside it)."""
    return subprocess.run(
        [nginx_binary(), "-t", "-c", str(config), "-e", str(config.parent / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@contextlib.contextmanager
def running_nginx(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground on ``config``; what it says goes to ``error.log`` beside it."""
    log = config.parent / "error.log"
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [nginx_binary(), "-c", str(config), "-e", str(log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        try:
            wait_for_port(port, 10, process)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"nginx: {exc}: {log.read_text()}") from exc
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- the access service ------------------------------------------------------------------------


def service_command(config: Path, port: int) -> list[str]:
    """The real ``gatekeeper access serve`` through the CLI's entry point."""
    return [
        sys.executable,
        "-m",
        "gatekeeper",
        "access",
        "serve",
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


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

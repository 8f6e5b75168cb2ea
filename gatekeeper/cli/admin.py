"""Commands for whoever runs the deployment: search attributes, payload encryption, health.

``gatekeeper search-attributes register`` is what the compose stack's setup job runs;
``gatekeeper codec-server`` lets the Temporal UI show encrypted payloads; ``gatekeeper health``
is the worker container's health check.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import structlog
import typer
from rich.markup import escape
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
)
from temporalio.service import RPCError

from gatekeeper.cli import common
from gatekeeper.client import connect
from gatekeeper.codec import Keyring, generate_key, keyring_from_settings, payload_codec
from gatekeeper.errors import ConfigError, ConnectionFailed
from gatekeeper.logging import configure_logging
from gatekeeper.namespace import (
    ensure_namespace,
    ensure_search_attributes,
    registered_search_attributes,
)
from gatekeeper.settings import Settings
from gatekeeper.temporal_errors import service_error
from workers.worker import shutdown_signals

log = structlog.get_logger(__name__)

search_attributes_app = typer.Typer(
    help="Gatekeeper's custom search attributes on a namespace.", no_args_is_help=True
)

#: Pause between attempts while waiting for a server or a new namespace to come up.
RETRY_EVERY = 1.0


def register(app: typer.Typer) -> None:
    """Attach the deployment commands to the root app."""
    app.add_typer(search_attributes_app, name="search-attributes")
    app.command("codec-server")(codec_server)
    app.command("codec-key")(codec_key)
    app.command("health")(health)


# --- search attributes ---------------------------------------------------------------------


@search_attributes_app.command("register")
def register_search_attributes(
    ctx: typer.Context,
    namespace: str = typer.Option(
        None, "--namespace", help="Namespace (default: TEMPORAL_NAMESPACE or the profile's)."
    ),
    create_namespace: bool = typer.Option(
        False, "--create-namespace", help="Create the namespace first if it does not exist."
    ),
    retention_days: int = typer.Option(
        30, "--retention-days", min=1, help="History retention of a namespace this creates."
    ),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0.0,
        help="Seconds to keep retrying while the server (or a new namespace) is not ready.",
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Register Gatekeeper's search attributes (self-hosted clusters; idempotent)."""
    settings = common.settings(ctx)
    configure_logging(settings)
    added, present = common.run(
        _register(settings, namespace, create_namespace, timedelta(days=retention_days), wait)
    )
    if json_:
        common.print_json({"added": added, "registered": present})
        return
    if added:
        common.console.print(f"[green]✔[/] registered {', '.join(added)}")
    else:
        common.console.print("[green]✔[/] every Gatekeeper search attribute was already registered")


@search_attributes_app.command("list")
def list_search_attributes(
    ctx: typer.Context,
    namespace: str = typer.Option(None, "--namespace", help="Namespace (default: the client's)."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """List the namespace's custom search attributes and their types."""
    settings = common.settings(ctx)

    async def listing() -> dict[str, str]:
        client = await connect(settings)
        return await registered_search_attributes(client, namespace)

    present = common.run(listing())
    if json_:
        common.print_json(present)
        return
    for name, kind in present.items():
        common.console.print(f"  {name:<24}{kind}")


async def _register(
    settings: Settings,
    namespace: str | None,
    create: bool,
    retention: timedelta,
    wait: float,
) -> tuple[list[str], dict[str, str]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            client = await connect(settings)
            target = namespace or client.namespace
            if create:
                await ensure_namespace(client, target, retention, deadline, retry_every=RETRY_EVERY)
            added = await ensure_search_attributes(client, namespace=target)
            return added, await registered_search_attributes(client, target)
        except ConnectionFailed as err:
            if loop.time() >= deadline:
                raise
            log.info("waiting for the Temporal server", reason=str(err))
            await asyncio.sleep(RETRY_EVERY)


# --- payload encryption --------------------------------------------------------------------


def codec_server(
    ctx: typer.Context,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on; anything but loopback needs GATEKEEPER_CODEC_SERVER_TOKEN.",
    ),
    port: int = typer.Option(8888, "--port", help="Port to listen on."),
    cors_origin: list[str] = typer.Option(
        None,
        "--cors-origin",
        "--ui-origin",
        metavar="ORIGIN",
        help="Origin of the Temporal UI allowed to call from a browser; repeat for several "
        "(default: GATEKEEPER_CODEC_SERVER_CORS_ORIGIN, else the dev server's UI on localhost). "
        "No wildcard.",
    ),
    json_: bool = typer.Option(
        False,
        "--json",
        help="Announce the server as one JSON object on stdout and log JSON lines on stderr.",
    ),
) -> None:
    """Serve /encode and /decode so the Temporal UI and CLI can show encrypted payloads.

    Uses the keys of GATEKEEPER_CODEC_KEYS / GATEKEEPER_CODEC_KEY_FILE, and inflates compressed
    payloads (GATEKEEPER_PAYLOAD_COMPRESSION=zlib serves without keys too). Callers must send
    'Authorization: Bearer <GATEKEEPER_CODEC_SERVER_TOKEN>'; without a token the server only
    listens on loopback (127.0.0.1, ::1, localhost). Point the dev server's UI at it with
    `temporal server start-dev --ui-codec-endpoint URL` (or TEMPORAL_CODEC_ENDPOINT for the UI
    container).
    """
    # Imported here: the HTTP server is only needed by this command.
    from gatekeeper.codec_server import DEFAULT_UI_ORIGINS, check_bind, create_app, serve

    settings = common.settings(ctx)
    if json_:
        settings = settings.with_overrides(log_format="json")
    configure_logging(settings)
    token = settings.codec_server_token
    # Before anything else, and long before a socket is opened.
    check_bind(host, token)
    origins = list(cors_origin or settings.codec_server_cors_origins or DEFAULT_UI_ORIGINS)
    keyring = keyring_from_settings(settings)
    compression = settings.payload_compression
    if keyring is None and compression == "off":
        raise ConfigError(
            "no codec keys are configured: set GATEKEEPER_CODEC_KEYS (or GATEKEEPER_CODEC_KEY_FILE); "
            "`gatekeeper codec-key` makes one (or GATEKEEPER_PAYLOAD_COMPRESSION=zlib to serve "
            "compressed payloads only)"
        )
    key_ids = keyring.ids if keyring is not None else []
    active = keyring.active if keyring is not None else None
    app = create_app(payload_codec(settings), origins=origins, token=token)

    async def serving() -> None:
        stop = asyncio.Event()
        with shutdown_signals(stop):
            async with serve(app, host, port) as url:
                if json_:
                    common.print_json(
                        {
                            "url": url,
                            "keys": key_ids,
                            "active_key": active,
                            "compression": compression,
                            "token_required": bool(token),
                            "cors_origins": origins,
                        }
                    )
                    await stop.wait()
                    return
                console = common.console
                console.print(f"[bold green]Codec server on {escape(url)}[/bold green]")
                shown_keys = f"{', '.join(key_ids)} (active {active})" if key_ids else "none"
                console.print(
                    f"  keys {shown_keys}; compression {compression}; "
                    f"token {'required' if token else 'not required (loopback only)'}"
                )
                console.print(f"  CORS origins: {escape(', '.join(origins))}")
                console.print(f"  dev server: temporal server start-dev --ui-codec-endpoint {url}")
                await stop.wait()

    try:
        common.run(serving())
    except OSError as err:  # the port is taken or the address is not ours
        raise ConfigError(
            f"the codec server cannot listen on {host}:{port}: {err.strerror}"
        ) from err


def codec_key(
    key_id: str = typer.Option("k1", "--id", help="Id to give the key (kept in every payload)."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Print a new random 256-bit key as 'id:base64', ready for GATEKEEPER_CODEC_KEYS."""
    key = generate_key()
    Keyring(keys={key_id: base64.b64decode(key)}, active=key_id)  # refuses an unusable id
    if json_:
        common.print_json({"id": key_id, "key": key, "value": f"{key_id}:{key}"})
        return
    typer.echo(f"{key_id}:{key}")


# --- health -------------------------------------------------------------------------------


def health(
    ctx: typer.Context,
    task_queue: str = typer.Option(
        None, "--task-queue", help="Task queue to check (default: the settings' task queue)."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Exit 0 when the server answers and a worker polls the task queue; 1 otherwise."""
    settings = common.settings(ctx).with_overrides(task_queue=task_queue)

    async def pollers() -> int:
        client = await connect(settings)
        try:
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace,
                    task_queue=TaskQueue(name=settings.task_queue),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
        except RPCError as err:
            raise service_error(err, f"cannot describe task queue {settings.task_queue}") from err
        return len(response.pollers)

    count = common.run(pollers())
    if json_:
        common.print_json(
            {"healthy": count > 0, "task_queue": settings.task_queue, "pollers": count}
        )
        raise typer.Exit(0 if count else 1)
    if count == 0:
        common.err_console.print(
            f"unhealthy: no worker polls task queue {settings.task_queue}", markup=False
        )
        raise typer.Exit(1)
    common.console.print(
        f"healthy: {count} poller(s) on task queue {settings.task_queue}", markup=False
    )

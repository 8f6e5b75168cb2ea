"""``gatekeeper access``: partners, people, grants, orders, and the access check.

``access order`` applies, exempts from, lifts and shows access orders, each an
``AccessOrderWorkflow`` that reaches every running release of the order's models.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from gatekeeper.adapters.registry.models import Partner, RegisteredPerson
from gatekeeper.cli import stores
from gatekeeper.cli.common import (
    JSON_OPTION,
    console,
    err_console,
    print_json,
    print_table,
    run,
    settings,
)
from gatekeeper.cli.render import markup, plain
from gatekeeper.cli.session import signer
from gatekeeper.client import connect
from gatekeeper.errors import InputError, RegistryError, scrub_class_names
from gatekeeper.ids import RELEASE_PREFIX, release_id_of
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.orders import (
    ALL_MODELS,
    AccessOrder,
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderStatus,
)
from gatekeeper.models.payloads import parse_request
from gatekeeper.orders import (
    Orders,
    load_exemption,
    load_lift,
    load_order_spec,
    models_without_releases,
)
from gatekeeper.settings import Settings
from gatekeeper.text import when

if TYPE_CHECKING:
    from gatekeeper.adapters.registry import AccessRegistry

app = typer.Typer(
    name="access",
    help="The access registry: vetted partners, their people, grants and access orders.",
    no_args_is_help=True,
)
partner_app = typer.Typer(help="Vetted partner organisations.", no_args_is_help=True)
person_app = typer.Typer(help="People who use models, usually for a partner.", no_args_is_help=True)
order_app = typer.Typer(
    help="Export-control style orders: suspend access across releases, exempt, lift.",
    no_args_is_help=True,
)
app.add_typer(partner_app, name="partner")
app.add_typer(person_app, name="person")
app.add_typer(order_app, name="order")


@contextmanager
def _registry(ctx: typer.Context, *, create: bool = False) -> Iterator[AccessRegistry]:
    # Imported here: SQLAlchemy and alembic cost every other command half a second to load.
    from gatekeeper.adapters.registry import AccessRegistry

    registry = AccessRegistry(stores.registry_url(settings(ctx), create=create))
    try:
        yield registry
    except RegistryError as err:
        if err.retryable:
            raise
        # The registry refused what was asked (a duplicate, an unknown partner): bad input.
        raise InputError(str(err)) from err
    finally:
        registry.close()


@partner_app.command("add")
def partner_add(
    ctx: typer.Context,
    partner_id: str = typer.Argument(..., metavar="ID", help="Partner id (lower-case)."),
    name: str = typer.Option("", "--name", help="Display name (default: the id)."),
    tier: VettingTier = typer.Option(..., "--tier", help="Vetting tier."),
    jurisdiction: str = typer.Option(..., "--jurisdiction", help="Region code, e.g. us, gb."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a vetted partner organisation (an id already registered is refused, exit 2)."""
    partner = Partner(id=partner_id, name=name, tier=tier, jurisdiction=jurisdiction)
    with _registry(ctx, create=True) as registry:
        added = registry.add_partner(partner)
    if as_json:
        print_json(added)
        return
    console.print(
        f"added partner {added.id} ({added.tier.value}, {added.jurisdiction})", markup=False
    )


@partner_app.command("list")
def partner_list(
    ctx: typer.Context,
    tier: VettingTier | None = typer.Option(None, "--tier", help="Only partners of this tier."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List partner organisations."""
    with _registry(ctx) as registry:
        found = registry.list_partners(tier)
    if as_json:
        print_json(found)
        return
    table = Table("id", "name", "tier", "jurisdiction", title=f"{len(found)} partners")
    for p in found:
        table.add_row(plain(p.id), plain(p.name), p.tier.value, plain(p.jurisdiction))
    print_table(table)


@person_app.command("add")
def person_add(
    ctx: typer.Context,
    person_id: str = typer.Argument(..., metavar="ID", help="Person id (lower-case)."),
    partner: str | None = typer.Option(None, "--partner", help="Partner organisation id."),
    nationality: NationalityStatus = typer.Option(
        NationalityStatus.UNKNOWN, "--nationality", help="US person, foreign person or unknown."
    ),
    location: str | None = typer.Option(None, "--location", help="Region code; unknown if unset."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a person (unknown nationality is denied under any nationality-scoped order).
    An id already registered, or an unknown partner, is refused (exit 2)."""
    person = RegisteredPerson(
        id=person_id, partner_id=partner, nationality=nationality, location=location
    )
    with _registry(ctx, create=True) as registry:
        added = registry.add_person(person)
    if as_json:
        print_json(added)
        return
    org = f" of {added.partner_id}" if added.partner_id else ""
    console.print(f"added person {added.id}{org} ({added.nationality.value})", markup=False)


@person_app.command("list")
def person_list(
    ctx: typer.Context,
    partner: str | None = typer.Option(None, "--partner", help="Only this partner's people."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List people."""
    with _registry(ctx) as registry:
        found = registry.list_people(partner)
    if as_json:
        print_json(found)
        return
    table = Table("id", "partner", "nationality", "location", title=f"{len(found)} people")
    for p in found:
        table.add_row(
            plain(p.id),
            plain(p.partner_id or "-"),
            p.nationality.value,
            plain(p.location or "unknown"),
        )
    print_table(table)


@app.command("grants")
def grants(
    ctx: typer.Context,
    release_id: str = typer.Argument(
        ..., metavar="RELEASE_ID", help="The release (the 'release-' prefix is optional)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List a release's grants, revoked and suspended ones included."""
    with _registry(ctx) as registry:
        found = registry.list_grants(release_id)
        if not found and release_id.startswith(RELEASE_PREFIX):
            # The id as the Temporal UI shows it (the workflow id).
            release_id = release_id_of(release_id)
            found = registry.list_grants(release_id)
    if as_json:
        print_json(found)
        return
    table = Table(
        "grant", "partner", "cohort", "surface", "status", "reason", title=f"{release_id} grants"
    )
    for g in found:
        table.add_row(
            plain(g.grant_id),
            plain(g.partner_id),
            plain(g.cohort),
            g.surface.value,
            plain(g.status),
            plain(g.reason),
        )
    print_table(table)


@app.command("orders")
def orders(
    ctx: typer.Context,
    active: bool = typer.Option(False, "--active", help="Only orders in force."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List access orders."""
    with _registry(ctx) as registry:
        found = registry.list_orders(active_only=active)
    if as_json:
        print_json(found)
        return
    table = Table("order", "models", "scope", "exempt", "status", "issued", title="access orders")
    for o in found:
        table.add_row(
            plain(o.order_id),
            plain(", ".join(o.models)),
            plain(o.scope),
            plain(exempt_cell(o)),
            plain(o.status),
            when(o.issued_at),
        )
    print_table(table)


def exempt_cell(order: AccessOrder) -> str:
    """Who is exempt from ``order``: partners named in it (for every model), then each later
    exemption's partners with the models it covers (``uk-lab (aurora)``); ``-`` for nobody."""
    parts = list(order.exempt_partners)
    for exemption in order.exemptions:
        partners = ", ".join(exemption.partners)
        if ALL_MODELS in exemption.models:
            parts.append(partners)
        else:
            parts.append(f"{partners} ({', '.join(exemption.models)})")
    return "; ".join(dict.fromkeys(parts)) or "-"


@app.command("check")
def check(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", help="Model name."),
    person: str = typer.Option(..., "--person", help="Person id."),
    surface: Surface = typer.Option(Surface.API, "--surface", help="Where the model is used."),
    variant: str | None = typer.Option(None, "--variant", help="Require this model version."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Answer allow or deny with the rule that decided; exits 0 on allow and 1 on deny."""
    with _registry(ctx) as registry:
        decision = registry.check_access(model, person, surface, variant)
    if as_json:
        print_json(dataclasses.asdict(decision))
    else:
        console.print(plain(decision.line()))
    raise typer.Exit(0 if decision.allowed else 1)


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default: [access_service] host, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=0,
        max=65535,
        help="Port to listen on; 0 picks a free one (default: [access_service] port, 8470).",
    ),
    config_file: Path | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="The configuration file whose [access_service] to use (default: GATEKEEPER_CONFIG, "
        "else gatekeeper.toml in the data directory).",
    ),
    insecure_no_caller_auth: bool = typer.Option(
        False,
        "--insecure-no-caller-auth",
        help="Answer callers without a token or certificate (a loopback host only).",
    ),
) -> None:
    """Serve access decisions over HTTP for gateways (nginx auth_request, Envoy ext_authz,
    Traefik forwardAuth): 200 allow, 403 deny, from a view of the registry that follows its
    change feed and fails closed when it cannot (see docs/access.md). Ctrl-C stops it."""
    from gatekeeper.access_service.server import Running, run_service
    from gatekeeper.access_service.settings import ServiceSettings
    from gatekeeper.config import load_worker_config
    from gatekeeper.logging import configure_logging

    config = settings(ctx)
    if config_file is not None:
        config = config.with_overrides(config=load_worker_config(config_file, required=True))
    configure_logging(config)
    stores.registry_url(config)  # a missing SQLite registry is refused, not created empty
    resolved = ServiceSettings.resolve(
        config, host=host, port=port, insecure_no_caller_auth=insecure_no_caller_auth
    )
    if resolved.insecure_no_caller_auth:
        err_console.print(
            "warning: answering callers without authentication (--insecure-no-caller-auth, "
            "loopback only)",
            markup=False,
        )

    def ready(running: Running) -> None:
        console.print(running.ready_line, markup=False)

    run(run_service(resolved, on_ready=ready))


# --- access orders --------------------------------------------------------------------------


KEY_OPTION = typer.Option(
    None, "--key", help="Ed25519 private key (PEM) to sign with (default: <keys dir>/<you>.pem)."
)


@asynccontextmanager
async def _orders(config: Settings, key: Path | None = None) -> AsyncIterator[Orders]:
    """An orders client that signs exempt and lift with the key of the person each names."""
    client = await connect(config)
    yield Orders(client, config.task_queue, signer=signer(config, key))


def _registry_exists(config: Settings) -> bool:
    """Whether the registry can be read without creating it (a SQLite file that is missing is
    not created just to look for public launches: visibility alone then answers)."""
    return stores.missing_registry(config) is None


def registry_line(status: OrderStatus) -> str:
    """What the order does now, after the step just taken, in one line."""
    if status.state == "failed":
        return "registry: nothing recorded"
    if status.state in ("lifting", "lifted"):
        return (
            f"registry: order lifted, {status.grants_restored} grant(s) restored; "
            "checks no longer apply it"
        )
    if status.order.scope == "foreign_persons":
        return (
            "registry: checks deny foreign persons and unknown nationalities, except exempt "
            "partners' staff; no grant is suspended and releases go on granting"
        )
    return (
        f"registry: {status.grants_suspended} grant(s) suspended org-wide, "
        f"{status.grants_restored} restored by exemptions; checks deny everyone the order "
        "covers; its releases wait to grant and launch"
    )


def _print_order(status: OrderStatus, *, elapsed: float | None = None) -> None:
    order = status.order
    counts = status.counts()
    took = f" in {elapsed:.2f} s" if elapsed is not None else ""
    console.print(
        f"order {markup(order.order_id)} is [bold]{markup(status.state)}[/bold]{took}: "
        f"{markup(', '.join(order.models))} for {markup(order.scope)}; "
        f"{len(status.releases)} release(s) reached: "
        + markup(
            ", ".join(
                f"{n} {outcome}" for outcome, n in counts.items() if n or outcome == "pending"
            )
        )
    )
    console.print(plain(registry_line(status)))
    if status.failure:
        console.print(f"[red]failed:[/red] {markup(scrub_class_names(status.failure))}")
    for exemption in status.exemptions:
        console.print(
            plain(
                f"exempt: {', '.join(exemption.partners)} for {', '.join(exemption.models)} "
                f"(by {exemption.by}: {exemption.reason})"
            )
        )
    if order.required_safeguards and status.state != "lifted":
        console.print(plain(f"lift requires: {', '.join(order.required_safeguards)}"))
    if status.state == "lifted":
        console.print(
            plain(
                f"lifted by {status.lifted_by} with safeguards: "
                f"{', '.join(status.safeguards) or '-'}"
            )
        )
    if not status.releases:
        return
    table = Table("release", "model", "update", "outcome", "state", "stage", "detail")
    for ack in status.releases.values():
        table.add_row(
            *(
                plain(value)
                for value in (
                    ack.release_id,
                    ack.model,
                    ack.update,
                    ack.outcome,
                    ack.state,
                    ack.stage,
                    ack.detail,
                )
            )
        )
    print_table(table)


@order_app.command("apply")
def order_apply(
    ctx: typer.Context,
    file: Path = typer.Argument(..., metavar="FILE", help="The order (YAML, see examples/orders)."),
    as_: str = typer.Option(..., "--as", help="The operator applying the order."),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once started, before every release has answered."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Refuse an order naming a model that no release has used and no launch made "
        "public (usually a typo); without it such an order is applied with a warning.",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Apply an order: registry first, then suspend_access to every running release."""
    spec = load_order_spec(file)
    config = settings(ctx)

    async def go() -> OrderStatus:
        async with _orders(config) as api:
            unused = await models_without_releases(api.client, spec.models)
            if unused and _registry_exists(config):
                with _registry(ctx) as registry:
                    unused = [m for m in unused if not registry.list_public_launches(m)]
            if unused:
                names = ", ".join(unused)
                line = (
                    f"order {spec.order_id} names {names}, which no release has used and no "
                    "launch made public"
                )
                if strict:
                    raise InputError(f"{line}; nothing applied (--strict)")
                err_console.print(
                    f"warning: {line}; applying it anyway (a typo? --strict refuses)",
                    markup=False,
                )
            return await api.apply(spec, as_, wait=not no_wait)

    started = time.monotonic()
    status = run(go())
    elapsed = time.monotonic() - started
    if as_json:
        print_json(status)
    else:
        _print_order(status, elapsed=elapsed)
    if status.state == "failed":
        raise typer.Exit(1)


@order_app.command("exempt")
def order_exempt(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ORDER_ID"),
    partners: list[str] = typer.Option([], "--partner", help="Partner to exempt (repeatable)."),
    models: list[str] = typer.Option(
        [], "--model", help="Only for this model of the order (repeatable; default: all)."
    ),
    reason: str = typer.Option("", "--reason", help="Why (e.g. the government's second letter)."),
    reference: str = typer.Option("", "--reference", help="The letter or docket."),
    as_: str = typer.Option(
        "", "--as", help="Who exempts (the policy's export_control_officer role)."
    ),
    file: Path | None = typer.Option(None, "--file", help="An exemption file instead of options."),
    key: Path | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Exempt named partners (and all their staff) from an order, for some or all models."""
    if file is not None:
        if partners or models or reason or reference or as_:
            raise InputError("give either --file or --partner/--model/--reason/--as, not both")
        request = load_exemption(file)
    else:
        if not partners or not as_ or not reason:
            raise InputError("give --partner (at least one), --reason and --as, or --file")
        request = parse_request(
            OrderExemptionRequest,
            {
                "by": as_,
                "partners": partners,
                "models": models,
                "reason": reason,
                "reference": reference,
            },
            "exempt",
        )
    config = settings(ctx)

    async def go() -> OrderStatus:
        async with _orders(config, key) as api:
            return await api.exempt(order_id, request)

    status = run(go())
    if as_json:
        print_json(status)
    else:
        _print_order(status)


@order_app.command("lift")
def order_lift(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ORDER_ID"),
    safeguards: list[str] = typer.Option(
        [], "--safeguard", help="A safeguard now in place (repeatable); the order may require some."
    ),
    reason: str = typer.Option("", "--reason", help="Why the order is lifted."),
    reference: str = typer.Option("", "--reference", help="The letter or docket."),
    as_: str = typer.Option(
        "", "--as", help="Who lifts (the policy's export_control_officer role)."
    ),
    file: Path | None = typer.Option(None, "--file", help="A lift file instead of options."),
    key: Path | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Lift an order: registry first, then restore_access to every release it suspended."""
    if file is not None:
        if safeguards or reason or reference or as_:
            raise InputError("give either --file or --safeguard/--reason/--as, not both")
        request = load_lift(file)
    else:
        if not as_ or not reason:
            raise InputError("give --reason and --as (and each --safeguard), or --file")
        request = parse_request(
            OrderLiftRequest,
            {"by": as_, "safeguards": safeguards, "reason": reason, "reference": reference},
            "lift",
        )
    config = settings(ctx)

    async def go() -> OrderStatus:
        async with _orders(config, key) as api:
            return await api.lift(order_id, request)

    started = time.monotonic()
    status = run(go())
    elapsed = time.monotonic() - started
    if as_json:
        print_json(status)
    else:
        _print_order(status, elapsed=elapsed)


@order_app.command("status")
def order_status(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ORDER_ID"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show an order: its state, exemptions, and every affected release's answer."""
    config = settings(ctx)

    async def go() -> OrderStatus:
        async with _orders(config) as api:
            return await api.status(order_id)

    status = run(go())
    if as_json:
        print_json(status)
    else:
        _print_order(status)


@order_app.command("list")
def order_list(
    ctx: typer.Context,
    limit: int = typer.Option(100, "--limit", help="At most this many orders."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List access order workflows (newest first), running or completed."""
    config = settings(ctx)

    async def go() -> list[dict[str, object]]:
        async with _orders(config) as api:
            return [dataclasses.asdict(row) for row in await api.list(limit=limit)]

    rows = run(go())
    if as_json:
        print_json(rows)
        return
    table = Table("order", "workflow", "started", "closed", title=f"{len(rows)} access orders")
    for row in rows:
        started, closed = row["started_at"], row["closed_at"]
        table.add_row(
            plain(row["order_id"]),
            plain(row["execution_status"]),
            when(started) if isinstance(started, datetime) else "-",
            when(closed) if isinstance(closed, datetime) else "-",
        )
    print_table(table)

"""``gatekeeper access``: partners, people, grants, orders, and the access check."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.table import Table

from gatekeeper.adapters.registry import AccessRegistry, Partner, RegisteredPerson
from gatekeeper.cli.common import JSON_OPTION, console, print_json, settings
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier

app = typer.Typer(
    name="access",
    help="The access registry: vetted partners, their people, grants and access orders.",
    no_args_is_help=True,
)
partner_app = typer.Typer(help="Vetted partner organisations.", no_args_is_help=True)
person_app = typer.Typer(help="People who use models, usually for a partner.", no_args_is_help=True)
app.add_typer(partner_app, name="partner")
app.add_typer(person_app, name="person")


@contextmanager
def _registry(ctx: typer.Context) -> Iterator[AccessRegistry]:
    registry = AccessRegistry(settings(ctx).effective_registry_url)
    try:
        yield registry
    finally:
        registry.close()


@partner_app.command("add")
def partner_add(
    ctx: typer.Context,
    partner_id: str = typer.Argument(..., metavar="ID", help="Partner id (lower-case)."),
    name: str = typer.Option("", "--name", help="Display name (default: the id)."),
    tier: VettingTier = typer.Option(..., "--tier", help="Vetting tier."),
    jurisdiction: str = typer.Option(..., "--jurisdiction", help="Region code, e.g. us, gb."),
) -> None:
    """Register a vetted partner organisation."""
    partner = Partner(id=partner_id, name=name, tier=tier, jurisdiction=jurisdiction)
    with _registry(ctx) as registry:
        added = registry.add_partner(partner)
    console.print(f"added partner {added.id} ({added.tier.value}, {added.jurisdiction})")


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
        table.add_row(p.id, p.name, p.tier.value, p.jurisdiction)
    console.print(table)


@person_app.command("add")
def person_add(
    ctx: typer.Context,
    person_id: str = typer.Argument(..., metavar="ID", help="Person id (lower-case)."),
    partner: str | None = typer.Option(None, "--partner", help="Partner organisation id."),
    nationality: NationalityStatus = typer.Option(
        NationalityStatus.UNKNOWN, "--nationality", help="US person, foreign person or unknown."
    ),
    location: str | None = typer.Option(None, "--location", help="Region code; unknown if unset."),
) -> None:
    """Register a person (unknown nationality is denied under any nationality-scoped order)."""
    person = RegisteredPerson(
        id=person_id, partner_id=partner, nationality=nationality, location=location
    )
    with _registry(ctx) as registry:
        added = registry.add_person(person)
    org = f" of {added.partner_id}" if added.partner_id else ""
    console.print(f"added person {added.id}{org} ({added.nationality.value})")


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
        table.add_row(p.id, p.partner_id or "-", p.nationality.value, p.location or "unknown")
    console.print(table)


@app.command("grants")
def grants(
    ctx: typer.Context,
    release_id: str = typer.Argument(..., metavar="RELEASE_ID", help="The release."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List a release's grants, revoked and suspended ones included."""
    with _registry(ctx) as registry:
        found = registry.list_grants(release_id)
    if as_json:
        print_json(found)
        return
    table = Table(
        "grant", "partner", "cohort", "surface", "status", "reason", title=f"{release_id} grants"
    )
    for g in found:
        table.add_row(g.grant_id, g.partner_id, g.cohort, g.surface.value, g.status, g.reason)
    console.print(table)


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
            o.order_id,
            ", ".join(o.models),
            o.scope,
            ", ".join(o.exempt_partners) or "-",
            o.status,
            o.issued_at.isoformat(timespec="minutes"),
        )
    console.print(table)


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
        console.print(decision.line())
    raise typer.Exit(0 if decision.allowed else 1)

"""``gatekeeper keys``: the keys the worker trusts, and who registers them.

Private keys stay in the keys dir (``GATEKEEPER_KEYS_DIR``, ``<person>.pem``, mode 600). Public
keys count only once an identity admin has registered them in the identity registry (the
registry's database, which the worker reads): every change is signed with the admin's key from
the keys dir (``--admin NAME`` reads ``NAME.pem``) and appended to the identity log.

- ``gatekeeper keys generate|register|list|revoke|rotate`` (here);
- ``gatekeeper keys passkey list|approve|reject``: passkeys people enrolled in the console;
- ``gatekeeper keys sso link|unlink|list``: single sign-on identities linked to people;
- ``gatekeeper keys gateway register``: the console's key, as a trusted gateway;
- ``gatekeeper identity init|log|verify|worker-key``: the trust root and the signed log
  (:mod:`gatekeeper.cli.identity`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from gatekeeper import signing
from gatekeeper.cli import common, stores
from gatekeeper.cli.session import key_path, parse_when
from gatekeeper.errors import InputError
from gatekeeper.identity.keyfiles import read_private_key, write_private_key
from gatekeeper.identity.keys import KeyKind, KeyRecord, PendingPasskey, PrincipalKind, key_id_of
from gatekeeper.models.base import Identifier, parse_duration
from gatekeeper.settings import Settings
from gatekeeper.text import for_markup

if TYPE_CHECKING:
    from gatekeeper.identity.registry import IdentityRegistry

app = typer.Typer(
    help="Signing keys: generate, register, list, revoke, rotate.", no_args_is_help=True
)

_KIND_HELP = "person, worker, admin or gateway"


# -- shared ------------------------------------------------------------------------------------


@contextmanager
def open_registry(settings: Settings, *, create: bool = False) -> Iterator[IdentityRegistry]:
    from gatekeeper.identity.registry import IdentityRegistry

    with IdentityRegistry(stores.registry_url(settings, create=create)) as registry:
        yield registry


def _principal(value: str, option: str = "--as") -> str:
    try:
        return TypeAdapter(Identifier).validate_python(value)
    except ValidationError:
        raise InputError(
            f"{option}: '{value}' is not a principal id (lower-case letters, digits, . _ -)"
        ) from None


def _kind(value: str) -> PrincipalKind:
    try:
        return PrincipalKind(value)
    except ValueError:
        raise InputError(f"--kind: '{value}' is not one of {_KIND_HELP}") from None


def read_admin_key(settings: Settings, admin: str) -> Ed25519PrivateKey:
    """The private key of admin ``admin`` from the keys dir."""
    name = _principal(admin, "--admin")
    path = key_path(settings, name)
    if not path.exists():
        raise InputError(
            f"--admin: no key for {name} in {settings.keys_dir} ({path.name}); an identity "
            "admin's changes are signed with their key"
        )
    try:
        return read_private_key(path)
    except InputError as err:
        raise InputError(f"--admin: {err}") from None


def _when(value: str | None, option: str) -> datetime | None:
    return parse_when(value, option=option) if value else None


def stamp(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _status(record: KeyRecord, now: datetime) -> str:
    why = record.why_not_valid_at(now)
    if why is None:
        return "valid" if record.revoked_at is None else f"valid until {stamp(record.revoked_at)}"
    if record.revoked_at is not None and now >= record.revoked_at:
        return "revoked"
    if record.valid_until is not None and now >= record.valid_until:
        return "expired"
    return "not yet valid"


def _row(record: KeyRecord, now: datetime) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "status": _status(record, now)}


def print_record(title: str, record: KeyRecord) -> None:
    common.console.print(f"[green]✔[/] {for_markup(title)}")
    for label, value in (
        ("key id", record.key_id),
        ("principal", f"{record.principal} ({record.principal_kind.value})"),
        ("public key", record.public_key),
        ("valid", f"{stamp(record.valid_from)} → {stamp(record.valid_until)}"),
        ("certified by", record.certified_by),
    ):
        common.console.print(f"    {label:<13}{value}", markup=False, highlight=False)


def write_new_key(path: Path, *, force: bool) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key, replace=force)
    return key


@app.command()
def generate(
    ctx: typer.Context,
    as_: str = typer.Option(..., "--as", help="Whose key (a principal id)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key file."),
    register: bool = typer.Option(
        False, "--register", help="Also register the public key (needs --admin)."
    ),
    admin: str = typer.Option(None, "--admin", help="The identity admin registering it."),
    kind: str = typer.Option("person", "--kind", help=_KIND_HELP),
    valid_until: str = typer.Option(None, "--valid-until", help="e.g. 2027-06-30 or +365d."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Create a key pair: the private key stays in the keys dir; the public key is registered by
    an identity admin (here with --register --admin, or later with `keys register`)."""
    person = _principal(as_)
    settings = common.settings(ctx)
    if register and not admin:
        raise InputError("--register needs --admin NAME (the identity admin who registers it)")
    principal_kind = _kind(kind)
    until = _when(valid_until, "--valid-until")
    path = key_path(settings, person)
    if path.exists() and not force:
        raise InputError(
            f"{path} already exists; use --force to replace it, or `gatekeeper keys rotate` to "
            "register a successor"
        )
    admin_key = read_admin_key(settings, admin) if register else None
    if admin_key is not None:
        # Refused before anything is written: a key file with no registration helps no one.
        with open_registry(settings, create=True) as registry:
            pem_key = Ed25519PrivateKey.generate()
            record = registry.register(
                principal=person,
                principal_kind=principal_kind,
                public_key=signing.public_key_b64(pem_key),
                valid_until=until,
                admin_key=admin_key,
            )
        write_private_key(path, pem_key, replace=force)
    else:
        pem_key = write_new_key(path, force=force)
        record = None
    public = signing.public_key_b64(pem_key)
    if json_:
        common.print_json(
            {
                "person": person,
                "private_key": str(path),
                "public_key": public,
                "key_id": key_id_of(public),
                "registered": record.model_dump(mode="json") if record else None,
            }
        )
        return
    common.console.print(f"[green]✔[/] private key written to {for_markup(path)} (mode 600)")
    common.console.print(f"    key id       {key_id_of(public)}", markup=False, highlight=False)
    common.console.print(f"    public key   {public}", markup=False, highlight=False)
    if record is not None:
        common.console.print(
            f"Registered for {person} ({record.principal_kind.value}) by {admin}.", markup=False
        )
        return
    common.console.print(
        "It counts once an identity admin registers it:\n"
        f"    gatekeeper keys register --as {person} --kind {principal_kind.value} "
        f"--public-key {public} --admin ADMIN",
        markup=False,
        highlight=False,
    )


@app.command("register")
def register_key(
    ctx: typer.Context,
    as_: str = typer.Option(..., "--as", help="Whose key (a principal id)."),
    public_key: str = typer.Option(..., "--public-key", help="Base64 of the raw 32-byte key."),
    kind: str = typer.Option("person", "--kind", help=_KIND_HELP),
    valid_from: str = typer.Option(None, "--valid-from", help="Default: now."),
    valid_until: str = typer.Option(None, "--valid-until", help="e.g. 2027-06-30 or +365d."),
    admin: str = typer.Option(..., "--admin", help="The identity admin registering it."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Register a public key for a person, worker or admin, signed by an identity admin."""
    settings = common.settings(ctx)
    person = _principal(as_)
    principal_kind = _kind(kind)
    start = _when(valid_from, "--valid-from")
    until = _when(valid_until, "--valid-until")
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        record = registry.register(
            principal=person,
            principal_kind=principal_kind,
            public_key=public_key.strip(),
            valid_from=start,
            valid_until=until,
            admin_key=admin_key,
        )
    if json_:
        common.print_json(record.model_dump(mode="json"))
        return
    print_record(f"registered {record.key_id} for {person}", record)


@app.command("list")
def list_keys(
    ctx: typer.Context,
    as_: str = typer.Option(None, "--as", help="Only this principal's keys."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Registered keys: id, principal, kind, validity, revocation."""
    settings = common.settings(ctx)
    principal = _principal(as_) if as_ else None
    with open_registry(settings) as registry:
        records = registry.keys(principal)
    now = datetime.now(UTC)
    if json_:
        common.print_json([_row(record, now) for record in records])
        return
    table = Table("key id", "principal", "kind", "valid from", "valid until", "revoked", "status")
    for record in records:
        revoked = (
            f"{stamp(record.revoked_at)} ({record.revoked_reason})" if record.revoked_at else "-"
        )
        table.add_row(
            record.key_id,
            record.principal,
            record.principal_kind.value + (" (passkey)" if record.kind is KeyKind.WEBAUTHN else ""),
            stamp(record.valid_from),
            stamp(record.valid_until),
            for_markup(revoked),
            _status(record, now),
        )
    common.print_table(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., help="The key to revoke (see `keys list`)."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the identity log)."),
    at: str = typer.Option(None, "--at", help="From when (default now; earlier if compromised)."),
    admin: str = typer.Option(..., "--admin", help="The identity admin revoking it."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Revoke a key: signatures made from then on no longer count."""
    settings = common.settings(ctx)
    when = _when(at, "--at")
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        record = registry.revoke(key_id.strip(), at=when, reason=reason, admin_key=admin_key)
    if json_:
        common.print_json(record.model_dump(mode="json"))
        return
    common.console.print(
        f"[green]✔[/] revoked {record.key_id} of {for_markup(record.principal)} from "
        f"{stamp(record.revoked_at)}"
    )


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    as_: str = typer.Option(..., "--as", help="Whose key (its private key is in the keys dir)."),
    admin: str = typer.Option(..., "--admin", help="The identity admin registering the new key."),
    grace: str = typer.Option(
        "0s", "--grace", help="How long the old key still counts, e.g. 1h or 7d."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Replace a principal's key: a new key is registered now and written to the keys dir; the old
    one is revoked after the grace period (its file is kept beside it, renamed)."""
    settings = common.settings(ctx)
    person = _principal(as_)
    period = parse_duration(grace)
    if not isinstance(period, timedelta):
        raise InputError(f"--grace: '{grace}' is not a duration (e.g. 1h, 7d, 90s)")
    admin_key = read_admin_key(settings, admin)
    path = key_path(settings, person)
    old_key = read_private_key(path) if path.exists() else None
    if old_key is None:
        raise InputError(f"no key for {person} in {settings.keys_dir} ({path.name}) to rotate")
    old_id = key_id_of(signing.public_key_b64(old_key))
    new_key = Ed25519PrivateKey.generate()
    with open_registry(settings, create=True) as registry:
        if registry.key(old_id) is None:
            raise InputError(
                f"{path.name} holds {old_id}, which is not registered; register it or generate "
                "a new key instead"
            )
        record = registry.rotate(
            old_id,
            public_key=signing.public_key_b64(new_key),
            grace=period,
            admin_key=admin_key,
        )
    retired = path.with_name(f"{person}.{old_id.split(':', 1)[1][:12]}.retired.pem")
    path.rename(retired)
    write_private_key(path, new_key)
    if json_:
        common.print_json(
            {
                **record.model_dump(mode="json"),
                "replaces": old_id,
                "old_key_revoked_at": common.rfc3339(datetime.now(UTC) + period),
                "private_key": str(path),
                "retired_private_key": str(retired),
            }
        )
        return
    print_record(f"rotated {old_id} of {person}", record)
    common.console.print(
        f"The old key counts for {grace} more; its file is now {retired}.",
        markup=False,
        highlight=False,
    )


# -- passkeys (enrolled through the console, approved here) -------------------------------------

passkey_app = typer.Typer(
    help="Passkeys people enrolled in the web console: list, approve, reject (identity admins).",
    no_args_is_help=True,
)
app.add_typer(passkey_app, name="passkey")

_ADMIN_HELP = "The identity admin deciding (their key is NAME.pem in the keys dir)."


def _enrollment_row(enrollment: PendingPasskey) -> dict[str, Any]:
    return enrollment.model_dump(mode="json")


@passkey_app.command("list")
def passkey_list(
    ctx: typer.Context,
    pending: bool = typer.Option(False, "--pending", help="Only those waiting for an admin."),
    as_: str = typer.Option(None, "--as", "--person", help="Only this person's."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Passkey enrollments: who asked, when, for which console origin, and their state."""
    settings = common.settings(ctx)
    person = _principal(as_) if as_ else None
    with open_registry(settings) as registry:
        found = (
            registry.pending_passkeys(person) if pending else registry.passkey_enrollments(person)
        )
    if json_:
        common.print_json([_enrollment_row(e) for e in found])
        return
    table = Table("enrollment", "person", "key id", "label", "origin", "requested", "state")
    for e in found:
        state = e.state + (f" ({e.reason})" if e.reason else "")
        table.add_row(
            e.enrollment_id,
            e.person,
            e.key_id,
            for_markup(e.label),
            e.origin,
            stamp(e.requested_at),
            for_markup(state),
        )
    common.print_table(table)


@passkey_app.command("approve")
def passkey_approve(
    ctx: typer.Context,
    enrollment_id: str = typer.Argument(..., help="The enrollment (see `keys passkey list`)."),
    admin: str = typer.Option(..., "--admin", "--as", help=_ADMIN_HELP),
    valid_until: str = typer.Option(None, "--valid-until", help="e.g. 2027-06-30 or +365d."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Register an enrolled passkey for its person, certified by the admin and logged: from now
    on it signs their decisions in the console."""
    settings = common.settings(ctx)
    until = _when(valid_until, "--valid-until")
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        record = registry.approve_passkey(enrollment_id.strip(), admin_key, valid_until=until)
    if json_:
        common.print_json(record.model_dump(mode="json"))
        return
    print_record(f"approved passkey {record.key_id} of {record.principal}", record)
    common.console.print(
        f"    {'origin':<13}{record.origin} (relying party {record.rp_id})",
        markup=False,
        highlight=False,
    )


@passkey_app.command("reject")
def passkey_reject(
    ctx: typer.Context,
    enrollment_id: str = typer.Argument(..., help="The enrollment (see `keys passkey list`)."),
    admin: str = typer.Option(..., "--admin", "--as", help=_ADMIN_HELP),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the identity log)."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Refuse an enrolled passkey (logged); it never counts."""
    settings = common.settings(ctx)
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        registry.reject_passkey(enrollment_id.strip(), admin_key, reason)
    if json_:
        common.print_json({"enrollment_id": enrollment_id.strip(), "state": "rejected"})
        return
    common.console.print(
        f"[green]✔[/] rejected passkey enrollment {for_markup(enrollment_id.strip())}"
    )


# -- single sign-on links ------------------------------------------------------------------------

sso_app = typer.Typer(
    help="Single sign-on identities (OIDC issuer + subject) linked to people: link, unlink, list.",
    no_args_is_help=True,
)
app.add_typer(sso_app, name="sso")


@sso_app.command("link")
def sso_link(
    ctx: typer.Context,
    person: str = typer.Argument(..., help="The roster person the identity is."),
    issuer: str = typer.Option(..., "--issuer", help="The OIDC provider's issuer URL."),
    subject: str = typer.Option(..., "--subject", help="The subject (sub) it gives the person."),
    email: str = typer.Option(None, "--email", help="Their e-mail there (for the reader)."),
    admin: str = typer.Option(..., "--admin", "--as", help=_ADMIN_HELP),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Link an OIDC identity to a person (signed by the admin, logged): the console signs them in
    as that person, and a gateway may attest it where the policy allows."""
    settings = common.settings(ctx)
    name = _principal(person, "PERSON")
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        link = registry.link_sso(
            name, issuer=issuer.strip(), subject=subject.strip(), email=email, admin_key=admin_key
        )
    if json_:
        common.print_json(link.model_dump(mode="json"))
        return
    common.console.print(
        f"[green]✔[/] linked {for_markup(link.issuer)} {for_markup(link.subject)} to "
        f"{for_markup(link.person)}"
    )


@sso_app.command("unlink")
def sso_unlink(
    ctx: typer.Context,
    person: str = typer.Argument(..., help="The person it is linked to."),
    issuer: str = typer.Option(..., "--issuer", help="The OIDC provider's issuer URL."),
    subject: str = typer.Option(..., "--subject", help="The subject (sub)."),
    admin: str = typer.Option(..., "--admin", "--as", help=_ADMIN_HELP),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Remove a link (signed by the admin, logged): the identity no longer signs in as them."""
    settings = common.settings(ctx)
    name = _principal(person, "PERSON")
    admin_key = read_admin_key(settings, admin)
    with open_registry(settings, create=True) as registry:
        registry.unlink_sso(
            name, issuer=issuer.strip(), subject=subject.strip(), admin_key=admin_key
        )
    if json_:
        common.print_json({"person": name, "issuer": issuer.strip(), "subject": subject.strip()})
        return
    common.console.print(
        f"[green]✔[/] unlinked {for_markup(issuer.strip())} {for_markup(subject.strip())} from "
        f"{for_markup(name)}"
    )


@sso_app.command("list")
def sso_list(
    ctx: typer.Context,
    person: str = typer.Option(None, "--person", "--as", help="Only this person's."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Linked single sign-on identities."""
    settings = common.settings(ctx)
    name = _principal(person, "--person") if person else None
    with open_registry(settings) as registry:
        links = registry.sso_links(name)
    if json_:
        common.print_json([link.model_dump(mode="json") for link in links])
        return
    table = Table("person", "issuer", "subject", "e-mail", "linked", "by")
    for link in links:
        table.add_row(
            link.person,
            for_markup(link.issuer),
            for_markup(link.subject),
            for_markup(link.email or "-"),
            stamp(link.linked_at),
            link.linked_by,
        )
    common.print_table(table)


# -- gateway keys (the console's) ----------------------------------------------------------------

gateway_app = typer.Typer(
    help="Gateway keys: the web console's key, which may attest single sign-on identities.",
    no_args_is_help=True,
)
app.add_typer(gateway_app, name="gateway")


@gateway_app.command("register")
def gateway_register(
    ctx: typer.Context,
    name: str = typer.Option("console", "--name", help="The gateway's principal id."),
    key_file: Path = typer.Option(
        ..., "--key-file", help="The gateway's Ed25519 PEM (created, mode 600, when missing)."
    ),
    admin: str = typer.Option(..., "--admin", "--as", help=_ADMIN_HELP),
    valid_until: str = typer.Option(None, "--valid-until", help="e.g. 2027-06-30 or +365d."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Register the console's key as a trusted gateway (signed by the admin, logged). It counts
    only where a policy lists updates in `gateway_attestation`, for identities an admin linked."""
    settings = common.settings(ctx)
    principal = _principal(name, "--name")
    until = _when(valid_until, "--valid-until")
    admin_key = read_admin_key(settings, admin)
    created = not key_file.exists()
    key = Ed25519PrivateKey.generate() if created else read_private_key(key_file)
    with open_registry(settings, create=True) as registry:
        record = registry.register(
            principal=principal,
            principal_kind=PrincipalKind.GATEWAY,
            public_key=signing.public_key_b64(key),
            valid_until=until,
            admin_key=admin_key,
        )
    if created:
        write_private_key(key_file, key)
    if json_:
        common.print_json({**record.model_dump(mode="json"), "key_file": str(key_file)})
        return
    print_record(f"registered gateway {principal} ({record.key_id})", record)
    if created:
        common.console.print(
            f"    {'key file':<13}{key_file} (new, mode 600)", markup=False, highlight=False
        )

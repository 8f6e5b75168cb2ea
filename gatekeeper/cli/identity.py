"""``gatekeeper identity``: the installation's trust root, and the signed log of every key change.

- ``gatekeeper identity init``: the installation's trust root (``identity-root.pem``).
- ``gatekeeper identity log`` / ``identity verify``: the signed log of every change, re-checked.
- ``gatekeeper identity worker-key``: the worker's own signing key, registered.

The keys themselves are ``gatekeeper keys`` (:mod:`gatekeeper.cli.keys`), whose helpers (the
registry, an admin's key from the keys dir, how a key record prints) these commands share.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from gatekeeper import signing
from gatekeeper.cli import common, keys
from gatekeeper.errors import GatekeeperError, InputError
from gatekeeper.identity.keyfiles import read_private_key
from gatekeeper.identity.keys import PrincipalKind, key_id_of
from gatekeeper.text import for_markup

app = typer.Typer(
    help="The identity registry: its trust root and the signed log of every change.",
    no_args_is_help=True,
)


class IdentityLogBroken(GatekeeperError):
    """The identity log or the key table fails verification (exit 1, like ``audit verify``)."""


# -- gatekeeper identity -----------------------------------------------------------------------


@app.command("init")
def identity_init(
    ctx: typer.Context,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Create the installation's trust root: its key in the keys dir, registered as the root."""
    from gatekeeper.identity.worker_key import root_key_path

    settings = common.settings(ctx)
    path = root_key_path(settings)
    with keys.open_registry(settings, create=True) as registry:
        existing = registry.root()
        if existing is not None:
            raise InputError(
                f"the identity registry already has a trust root ({existing.key_id}); an "
                "installation has one root"
            )
        created = not path.exists()
        key = keys.write_new_key(path, force=False) if created else read_private_key(path)
        root = registry.init_root(key)
    if json_:
        common.print_json(
            {**root.model_dump(mode="json"), "private_key": str(path), "key_created": created}
        )
        return
    made = "written to" if created else "read from"
    keys.print_record(f"trust root created; its private key {made} {path} (mode 600)", root)
    common.console.print(
        "Pin it in the worker's configuration (gatekeeper.toml):", markup=False, highlight=False
    )
    common.console.print(
        f'    [identity]\n    trust_root = "{root.key_id}"', markup=False, highlight=False
    )
    common.console.print(
        f"Register identity admins with `gatekeeper keys register --kind admin --admin "
        f"{root.principal} ...`; keep {path.name} offline once they exist.",
        markup=False,
        highlight=False,
    )


@app.command("log")
def identity_log(ctx: typer.Context, json_: bool = common.JSON_OPTION) -> None:
    """Every change to the registry, oldest first: who (which admin key) did what, when."""
    settings = common.settings(ctx)
    with keys.open_registry(settings) as registry:
        entries = registry.log()
    if json_:
        common.print_json([entry.model_dump(mode="json") for entry in entries])
        return
    table = Table("seq", "at", "action", "key", "by", "hash")
    for entry in entries:
        table.add_row(
            str(entry.seq),
            keys.stamp(entry.at),
            entry.action,
            entry.key_id or _sso_of(entry.body),
            entry.by_key_id,
            entry.hash[:16] + "…",
        )
    common.print_table(table)


def _sso_of(body: dict[str, Any]) -> str:
    """What a single sign-on entry is about, where other entries name a key."""
    sso = body.get("sso")
    if not isinstance(sso, dict):
        return "-"
    return for_markup(f"{sso.get('issuer')} {sso.get('subject')} → {sso.get('person')}")


@app.command("verify")
def identity_verify(
    ctx: typer.Context,
    trust_root: str = typer.Option(
        None, "--trust-root", help="Key id the root must be (default: [identity] trust_root)."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Replay the identity log: every hash, signature and certificate, and the key table."""
    settings = common.settings(ctx)
    pinned = trust_root or settings.config.identity.trust_root
    with keys.open_registry(settings) as registry:
        problems = registry.verify_log(trust_root=pinned)
        entries = len(registry.log())
    if json_:
        common.print_json({"ok": not problems, "entries": entries, "problems": problems})
        if problems:
            raise typer.Exit(1)
        return
    if problems:
        raise IdentityLogBroken(problems[0])
    common.console.print(
        f"ok: {entries} identity log entries verify"
        + (f", root {pinned}" if pinned else " (no trust root pinned)"),
        markup=False,
    )


@app.command("worker-key")
def identity_worker_key(
    ctx: typer.Context,
    register: bool = typer.Option(
        False, "--register", help="Register it as a worker key (needs --admin)."
    ),
    admin: str = typer.Option(None, "--admin", help="The identity admin registering it."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """The worker's own key ([identity] worker_key, default <data_dir>/worker-key.pem): created
    if missing, printed, and with --register --admin A registered as a worker key."""
    from gatekeeper.identity.keyfiles import load_or_create
    from gatekeeper.identity.worker_key import WORKER_PRINCIPAL, worker_key_path

    settings = common.settings(ctx)
    if register and not admin:
        raise InputError("--register needs --admin NAME (the identity admin who registers it)")
    admin_key = keys.read_admin_key(settings, admin) if register else None
    path = worker_key_path(settings)
    key, created = load_or_create(path)
    public = signing.public_key_b64(key)
    key_id = key_id_of(public)
    with keys.open_registry(settings, create=True) as registry:
        record = registry.key(key_id)
        if record is None and admin_key is not None:
            record = registry.register(
                principal=WORKER_PRINCIPAL,
                principal_kind=PrincipalKind.WORKER,
                public_key=public,
                admin_key=admin_key,
            )
    if json_:
        common.print_json(
            {
                "key_id": key_id,
                "public_key": public,
                "private_key": str(path),
                "created": created,
                "registered": record.model_dump(mode="json") if record else None,
            }
        )
        return
    made = "created" if created else "found"
    common.console.print(f"worker key {made}: {path}", markup=False, highlight=False)
    common.console.print(f"    key id       {key_id}", markup=False, highlight=False)
    common.console.print(f"    public key   {public}", markup=False, highlight=False)
    if record is not None:
        common.console.print(
            f"Registered to {record.principal} ({record.principal_kind.value}).", markup=False
        )
    else:
        common.console.print(
            "Not registered; an identity admin runs:\n"
            f"    gatekeeper keys register --as {WORKER_PRINCIPAL} --kind worker "
            f"--public-key {public} --admin ADMIN",
            markup=False,
            highlight=False,
        )


# -- gatekeeper keys ---------------------------------------------------------------------------

"""``gatekeeper keys``: Ed25519 keys for signed decisions."""

from __future__ import annotations

import os

import typer
from pydantic import TypeAdapter, ValidationError

from gatekeeper import signing
from gatekeeper.cli import common
from gatekeeper.cli.session import key_path
from gatekeeper.errors import InputError
from gatekeeper.models.base import Identifier
from gatekeeper.text import for_markup

app = typer.Typer(help="Signing keys for decisions.", no_args_is_help=True)


@app.command()
def generate(
    ctx: typer.Context,
    as_: str = typer.Option(..., "--as", help="Whose key (a roster id)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Create a key pair: the private key stays in the keys dir, the public key goes on the roster."""
    try:
        TypeAdapter(Identifier).validate_python(as_)
    except ValidationError:
        raise InputError(
            f"--as: '{as_}' is not a roster id (lower-case letters, digits, . _ -)"
        ) from None
    settings = common.settings(ctx)
    path = key_path(settings, as_)
    if path.exists() and not force:
        raise InputError(
            f"{path} already exists; use --force to replace it "
            "(old signatures stay valid only while the roster keeps the old public key)"
        )
    pem, public = signing.generate_keypair()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    if json_:
        common.print_json({"person": as_, "private_key": str(path), "public_key": public})
        return
    common.console.print(f"[green]✔[/] private key written to {for_markup(path)} (mode 600)")
    common.console.print(
        f"Add the public key to the roster entry of {as_} in the policy:", markup=False
    )
    common.console.print(f"    public_key: {public}", highlight=False, markup=False)

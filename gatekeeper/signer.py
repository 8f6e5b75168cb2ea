"""The client's half of signed requests: find the actor's key, sign what the worker will check.

:class:`Signer` is what ``Releases`` and ``Orders`` use before every state-changing update: it
finds the private key of the person the request names (``--key FILE``, else
``<keys_dir>/<person>.pem``), takes the binding from the release's (or order's) current status,
and signs the request as plain JSON with :func:`gatekeeper.statements.sign_request`. The worker
recomputes the binding from its own state and checks the key in its own registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from gatekeeper.errors import InputError
from gatekeeper.signed_requests import ACTOR_FIELDS
from gatekeeper.statements import SIGNATURE_FIELD, Binding, sign_request

#: Finds a person's private key, or ``None`` when they have none.
KeySource = Callable[[str], Ed25519PrivateKey | None]


class MissingKey(InputError):
    """The actor has no private key to sign with."""


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (one-line ``InputError`` otherwise)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{path}: not an Ed25519 private key in PEM form ({err})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    return key


def request_body(request: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """The plain JSON a request is sent as: every field set or not defaulted, no signature."""
    if isinstance(request, BaseModel):
        return request.model_dump(mode="json", exclude_defaults=True, exclude={SIGNATURE_FIELD})
    return {k: v for k, v in request.items() if k != SIGNATURE_FIELD}


class Signer:
    """Signs requests with the key of the person each names.

    ``keys_dir``: where ``<person>.pem`` keys live; ``key_file``: one key for every request (the
    CLI's ``--key``); ``keys``: any other source (tests). ``required=False`` sends a request
    unsigned when its actor has no key (the worker then decides; it refuses by default).
    """

    def __init__(
        self,
        *,
        keys_dir: Path | None = None,
        key_file: Path | None = None,
        keys: KeySource | None = None,
        required: bool = True,
    ) -> None:
        self.keys_dir = keys_dir
        self.key_file = key_file
        self.keys = keys
        self.required = required

    def key_for(self, person: str) -> Ed25519PrivateKey | None:
        if self.key_file is not None:
            if not self.key_file.exists():
                raise InputError(f"--key: {self.key_file} does not exist")
            return load_private_key(self.key_file)
        if self.keys is not None:
            found = self.keys(person)
            if found is not None:
                return found
        if self.keys_dir is not None:
            path = self.keys_dir / f"{person}.pem"
            if path.exists():
                return load_private_key(path)
        if not self.required:
            return None
        where = f" (looked for {self.keys_dir / f'{person}.pem'})" if self.keys_dir else ""
        raise MissingKey(
            f"no signing key for {person}{where}: create and register one with "
            f"`gatekeeper keys generate --as {person}`, or pass --key FILE"
        )

    def sign(
        self, action: str, request: BaseModel | dict[str, Any], binding: Binding
    ) -> dict[str, Any]:
        """``request`` as plain JSON, signed by its actor's key over ``binding`` (unsigned when
        the signer is not required and the actor has no key)."""
        body = request_body(request)
        actor = str(body.get(ACTOR_FIELDS[action], ""))
        key = self.key_for(actor)
        if key is None:
            return body
        return sign_request(key, action=action, actor=actor, request=body, binding=binding)

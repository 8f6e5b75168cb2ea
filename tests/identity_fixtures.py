"""Registered keys for tests: a trust root, an identity admin and a key per person, on the fly.

``register_people(registry, people, keys_dir)`` gives each person a registered Ed25519 key and
writes its private half to ``keys_dir/<person>.pem`` (where ``gatekeeper`` commands run with
``GATEKEEPER_KEYS_DIR=keys_dir`` find it). The trust root and an admin are created the first time
(``keys_dir/identity-root.pem``, ``keys_dir/identity-admin.pem``) and reused after; a person who
already has a registered key whose private half is in ``keys_dir`` keeps it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.identity.keys import PrincipalKind, key_id_of
from gatekeeper.identity.registry import ROOT_PRINCIPAL, IdentityRegistry

#: The admin these fixtures register people with.
ADMIN = "identity-admin"


def write_key(path: Path, private_key: Ed25519PrivateKey) -> None:
    """Write ``private_key`` as PEM to ``path`` (mode 600), like ``gatekeeper keys generate``."""
    from cryptography.hazmat.primitives import serialization

    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def read_key(path: Path) -> Ed25519PrivateKey:
    return signing.load_private_key(path.read_bytes())


def _registered(registry: IdentityRegistry, key: Ed25519PrivateKey) -> bool:
    return registry.key(key_id_of(signing.public_key_b64(key))) is not None


def root_key(registry: IdentityRegistry, keys_dir: Path) -> Ed25519PrivateKey:
    """The registry's trust root key, from ``keys_dir`` (made and registered if there is none)."""
    path = keys_dir / f"{ROOT_PRINCIPAL}.pem"
    root = registry.root()
    if root is None:
        key = Ed25519PrivateKey.generate()
        registry.init_root(key)
        write_key(path, key)
        return key
    if path.exists():
        key = read_key(path)
        if key_id_of(signing.public_key_b64(key)) == root.key_id:
            return key
    raise RuntimeError(f"the registry's trust root {root.key_id} is not the key in {path}")


def admin_key(registry: IdentityRegistry, keys_dir: Path) -> Ed25519PrivateKey:
    """A registered identity admin's key (``keys_dir/identity-admin.pem``), made if needed."""
    path = keys_dir / f"{ADMIN}.pem"
    if path.exists():
        key = read_key(path)
        if _registered(registry, key):
            return key
    root = root_key(registry, keys_dir)
    key = Ed25519PrivateKey.generate()
    registry.register(
        principal=ADMIN,
        principal_kind=PrincipalKind.ADMIN,
        public_key=signing.public_key_b64(key),
        admin_key=root,
    )
    write_key(path, key)
    return key


def register_people(
    registry: IdentityRegistry,
    people: Iterable[str],
    keys_dir: Path,
    *,
    valid_from: datetime | None = None,
    kind: PrincipalKind = PrincipalKind.PERSON,
) -> dict[str, Ed25519PrivateKey]:
    """A registered key per person (its private half in ``keys_dir/<person>.pem``)."""
    admin = admin_key(registry, keys_dir)
    keys: dict[str, Ed25519PrivateKey] = {}
    for person in dict.fromkeys(people):
        path = keys_dir / f"{person}.pem"
        key = read_key(path) if path.exists() else None
        if key is None or not _registered(registry, key):
            key = key or Ed25519PrivateKey.generate()
            registry.register(
                principal=person,
                principal_kind=kind,
                public_key=signing.public_key_b64(key),
                valid_from=valid_from,
                admin_key=admin,
            )
            write_key(path, key)
        keys[person] = key
    return keys

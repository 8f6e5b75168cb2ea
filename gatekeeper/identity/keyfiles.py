"""Private keys on disk: PEM files of mode 600, read back with a one-line error when unusable."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.errors import InputError


def write_private_key(path: Path, private_key: Ed25519PrivateKey, *, replace: bool = False) -> None:
    """Write ``private_key`` as unencrypted PKCS#8 PEM to ``path``, readable by its owner only.

    Raises:
        InputError: ``path`` exists and ``replace`` is false.
    """
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    try:
        descriptor = os.open(path, flags, 0o600)
    except FileExistsError:
        raise InputError(f"{path} already exists; it is not overwritten") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    path.chmod(0o600)


def read_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``.

    Raises:
        InputError: the file is missing or holds no Ed25519 private key.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path} does not exist") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the key ({err.strerror})") from None
    try:
        return signing.load_private_key(data)
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: not an Ed25519 private key in PEM form ({err})") from None


def load_or_create(path: Path) -> tuple[Ed25519PrivateKey, bool]:
    """The key in ``path``, or a new one written there; and whether it was created."""
    if path.exists():
        return read_private_key(path), False
    key = Ed25519PrivateKey.generate()
    try:
        write_private_key(path, key)
    except InputError:  # another process made it first: use theirs
        return read_private_key(path), False
    return key, True

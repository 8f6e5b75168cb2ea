"""Bearer tokens for a Temporal cluster that runs the JWT authorizer (the compose stack does).

Temporal's default claim mapper accepts a JWT signed with ES256 (or RS256) by a key in its JSON
Web Key Set, whose ``kid`` header names that key, whose ``aud`` is the configured audience, and
whose ``permissions`` claim lists ``<namespace>:<read|write|admin>``; the default authorizer then
lets a reader call read-only APIs only, a writer everything but namespace administration (reset
and terminate included), an admin everything on that namespace.

This module makes the signing key (EC P-256), keeps the key set's file (adding a key, retiring
one), and issues tokens. It refuses what would widen access by accident: the
``temporal-system`` scope (a cluster-wide role), tokens without an expiry, and lifetimes over
:data:`MAX_TTL`. Pure functions plus file writes; no network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gatekeeper.errors import ConfigError, InputError

#: Our role names and the permission words Temporal's claim mapper reads.
ROLES: dict[str, str] = {"reader": "read", "writer": "write", "admin": "admin"}
#: The claim Temporal reads roles from (``permissionsClaimName`` in the server config).
PERMISSIONS_CLAIM = "permissions"
#: The audience the compose stack requires (``TEMPORAL_JWT_AUDIENCE``).
DEFAULT_AUDIENCE = "gatekeeper-temporal"
#: Longest lifetime a token may be issued for.
MAX_TTL = timedelta(days=90)
#: ``iat`` and ``nbf`` are set this far back: the server refuses a token issued "in the future",
#: so a signing machine whose clock runs a little ahead must not make fresh tokens fail.
CLOCK_SKEW = timedelta(seconds=60)
#: Temporal's cluster-wide scope: a role there applies to every namespace.
SYSTEM_NAMESPACE = "temporal-system"
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_SUBJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")
_TTL = re.compile(r"^(\d+)([mhd])$")
_TTL_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


# --- the signing key ------------------------------------------------------------------------


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    """A new EC P-256 key (ES256), the kind Temporal's key provider reads from a key set."""
    return ec.generate_private_key(ec.SECP256R1())


def write_private_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, readable by its owner only; never overwrite.

    Raises:
        ConfigError: the file exists already.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists already; keys are never overwritten") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key in the PEM file ``path``.

    Raises:
        ConfigError: unreadable, not a PEM private key, or not P-256.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"signing key {path} cannot be read: {err.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"signing key {path} is not an unencrypted PEM private key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"signing key {path} is not an EC P-256 key (ES256)")
    return key


# --- the key set ----------------------------------------------------------------------------


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public key as a JWK with its RFC 7638 thumbprint as ``kid``."""
    numbers = public_key.public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    kid = _b64url(hashlib.sha256(_json_bytes(members)).digest())
    return {**members, "kid": kid, "use": "sig", "alg": "ES256"}


def key_id(key: ec.EllipticCurvePrivateKey) -> str:
    """The ``kid`` of ``key``'s public half (its JWK thumbprint)."""
    return public_jwk(key.public_key())["kid"]


def read_jwks(path: Path) -> dict[str, Any]:
    """The key set in ``path``; a missing file is an empty set.

    Raises:
        ConfigError: the file is not a JSON object with a ``keys`` list.
    """
    if not path.exists():
        return {"keys": []}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"key set {path} is not readable JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ConfigError(f'key set {path} must be a JSON object with a "keys" list')
    return data


def _write_jwks(path: Path, jwks: dict[str, Any]) -> None:
    """Replace the file in one step (the server may read it at any moment); world-readable:
    it holds public keys only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(json.dumps(jwks, indent=2) + "\n")
    temporary.chmod(0o644)
    temporary.replace(path)


def add_key(path: Path, public_key: ec.EllipticCurvePublicKey) -> str:
    """Add ``public_key`` to the key set in ``path`` (created if missing), keeping the keys
    already there; returns its ``kid``. Adding a key twice changes nothing."""
    jwks = read_jwks(path)
    jwk = public_jwk(public_key)
    if not any(isinstance(k, dict) and k.get("kid") == jwk["kid"] for k in jwks["keys"]):
        jwks["keys"].append(jwk)
        _write_jwks(path, jwks)
    return jwk["kid"]


def retire_key(path: Path, kid: str) -> None:
    """Remove the key ``kid`` from the key set: every token it signed is refused once the
    server next reads the set.

    Raises:
        InputError: no key ``kid`` in the set.
    """
    jwks = read_jwks(path)
    kept = [k for k in jwks["keys"] if not (isinstance(k, dict) and k.get("kid") == kid)]
    if len(kept) == len(jwks["keys"]):
        raise InputError(f"key set {path} has no key {kid!r}")
    _write_jwks(path, {**jwks, "keys": kept})


# --- tokens ---------------------------------------------------------------------------------


def parse_ttl(text: str) -> timedelta:
    """``90m``, ``12h`` or ``30d``, at most :data:`MAX_TTL`.

    Raises:
        InputError: another form, zero, or longer than allowed.
    """
    match = _TTL.match(text.strip())
    if not match:
        raise InputError(f"--ttl must look like 90m, 12h or 30d, not {text!r}")
    ttl = timedelta(**{_TTL_UNITS[match.group(2)]: int(match.group(1))})
    if ttl <= timedelta(0):
        raise InputError("--ttl must be longer than zero")
    if ttl > MAX_TTL:
        raise InputError(f"--ttl may be at most {MAX_TTL.days}d; issue a new token instead")
    return ttl


def permissions(role: str, namespaces: Sequence[str]) -> list[str]:
    """The ``permissions`` claim for ``role`` on each namespace.

    Raises:
        InputError: an unknown role, no namespace, a malformed namespace, or the cluster-wide
            ``temporal-system`` scope.
    """
    if role not in ROLES:
        raise InputError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if not namespaces:
        raise InputError("name at least one --namespace")
    claim = []
    for namespace in namespaces:
        if namespace == SYSTEM_NAMESPACE:
            raise InputError(
                f"{SYSTEM_NAMESPACE} is the cluster-wide scope (every namespace); "
                "this command issues namespace roles only"
            )
        if not _NAMESPACE.match(namespace):
            raise InputError(f"--namespace {namespace!r} is not a Temporal namespace name")
        claim.append(f"{namespace}:{ROLES[role]}")
    return claim


def issue_token(
    key: ec.EllipticCurvePrivateKey,
    *,
    subject: str,
    role: str,
    namespaces: Sequence[str],
    ttl: timedelta,
    now: datetime,
    audience: str = DEFAULT_AUDIENCE,
    issuer: str | None = None,
) -> str:
    """A JWT (ES256) for ``subject`` holding ``role`` on ``namespaces`` from ``now`` for ``ttl``.

    Claims: ``sub``, ``permissions``, ``aud``, ``iat`` and ``nbf`` (:data:`CLOCK_SKEW` before
    ``now``), ``exp`` (``now + ttl``), a random ``jti``, and ``iss`` when given. The header's
    ``kid`` names the signing key in the key set.

    Raises:
        InputError: a malformed subject, role, namespace, audience or lifetime.
    """
    if not _SUBJECT.match(subject):
        raise InputError(
            f"--subject {subject!r} must be a short identifier (letters, digits, ._@:+-)"
        )
    if not audience.strip():
        raise InputError("--audience must not be empty")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InputError(f"a token lives longer than zero and at most {MAX_TTL.days} days")
    issued = int((now - CLOCK_SKEW).timestamp())
    claims: dict[str, Any] = {
        "sub": subject,
        PERMISSIONS_CLAIM: permissions(role, namespaces),
        "aud": audience,
        "iat": issued,
        "nbf": issued,
        "exp": int((now + ttl).timestamp()),
        "jti": secrets.token_hex(16),
    }
    if issuer:
        claims["iss"] = issuer
    header = {"alg": "ES256", "kid": key_id(key), "typ": "JWT"}
    signing_input = f"{_b64url(_json_bytes(header))}.{_b64url(_json_bytes(claims))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64url(signature)}"


def write_token(path: Path, token: str) -> None:
    """Write ``token`` (and a newline) to ``path``, readable by its owner only, replacing an
    older token in one step (a running worker re-reads the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    temporary.replace(path)

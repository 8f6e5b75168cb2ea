"""The worker's own key, and the identity checks a worker makes before it polls.

A worker signs audit heads with its own Ed25519 key (``[identity] worker_key``, default
``<data_dir>/worker-key.pem``, created on first start with mode 600). Its public half counts only
once an identity admin has registered it (principal kind ``worker``): a worker whose key is not
registered, or no longer valid, refuses to start with a one-line error naming the command to run.
``gatekeeper dev`` and the demo (one machine, a local trust root whose key is in the keys dir)
register it themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.errors import ConfigError
from gatekeeper.identity.keyfiles import load_or_create, read_private_key
from gatekeeper.identity.keys import KeyRecord, PrincipalKind, key_id_of
from gatekeeper.identity.registry import ROOT_PRINCIPAL, IdentityRegistry, private_key_id
from gatekeeper.settings import Settings

log = structlog.get_logger(__name__)

#: The principal every worker's key is registered under.
WORKER_PRINCIPAL = "gatekeeper-worker"
#: The trust root's key file in the keys dir (``gatekeeper identity init``, ``gatekeeper dev``).
ROOT_KEY_FILE = f"{ROOT_PRINCIPAL}.pem"


def worker_key_path(settings: Settings) -> Path:
    """Where this worker's private key lives."""
    return settings.config.identity.worker_key or settings.data_dir / "worker-key.pem"


def root_key_path(settings: Settings) -> Path:
    return settings.keys_dir / ROOT_KEY_FILE


def ensure_worker_key(
    settings: Settings,
    registry: IdentityRegistry,
    *,
    admin_key: Ed25519PrivateKey | None = None,
) -> tuple[Ed25519PrivateKey, KeyRecord]:
    """The worker's private key and its registered record; the key is created if missing.

    With ``admin_key`` (``gatekeeper dev``, the demo) an unregistered key is registered as a
    ``worker`` key. Without one, an unregistered key stops the worker.

    Raises:
        ConfigError: the key is not registered (and no admin key was given), belongs to someone
            who is not a worker, or is not valid now (expired or revoked).
    """
    path = worker_key_path(settings)
    try:
        key, created = load_or_create(path)
    except Exception as err:  # a one-line reason, whatever the file's problem
        raise ConfigError(f"the worker's key: {err}") from None
    if created:
        log.info("worker key created", path=str(path))
    public = signing.public_key_b64(key)
    key_id = key_id_of(public)
    record = registry.key(key_id)
    if record is None and admin_key is not None:
        record = registry.register(
            principal=WORKER_PRINCIPAL,
            principal_kind=PrincipalKind.WORKER,
            public_key=public,
            admin_key=admin_key,
        )
        log.info("worker key registered", key_id=key_id, by=private_key_id(admin_key))
    if record is None:
        raise ConfigError(
            f"the worker's key {key_id} ({path}) is not registered; an identity admin runs "
            f"`gatekeeper keys register --as {WORKER_PRINCIPAL} --kind worker "
            f"--public-key {public} --admin ADMIN`"
        )
    if record.principal_kind is not PrincipalKind.WORKER:
        raise ConfigError(
            f"the worker's key {key_id} ({path}) is registered to {record.principal}, a "
            f"{record.principal_kind.value}, not a worker; give the worker its own key"
        )
    why = record.why_not_valid_at(datetime.now(UTC))
    if why is not None:
        raise ConfigError(
            f"the worker's {why}; move {path} aside and register the new key the worker creates "
            "(`gatekeeper keys register --kind worker`)"
        )
    return key, record


def check_trust(settings: Settings, registry: IdentityRegistry) -> KeyRecord:
    """The registry's trust root, after checking it and the identity log.

    Raises:
        ConfigError: the registry has no root; its root is not the pinned ``[identity]
            trust_root``; the identity log fails verification.
    """
    root = registry.root()
    if root is None:
        raise ConfigError(
            "the identity registry has no trust root; run `gatekeeper identity init` and put "
            "the key id it prints in the worker's configuration ([identity] trust_root)"
        )
    pinned = settings.config.identity.trust_root
    problems = registry.verify_log(trust_root=pinned)
    if problems:
        raise ConfigError(f"the identity registry cannot be trusted: {problems[0]}")
    if pinned is None:
        log.warning(
            "no trust root pinned in the worker's configuration; trusting the registry's",
            trust_root=root.key_id,
        )
    return root


def local_trust_root(
    settings: Settings, registry: IdentityRegistry
) -> tuple[Ed25519PrivateKey | None, KeyRecord, bool]:
    """For ``gatekeeper dev`` and the demo: the trust root, initialised from (or into) the keys dir.

    Returns the root's private key (``None`` when the registry's root is not the key in the
    keys dir, e.g. made on another machine), its record, and whether it was created now.
    """
    path = root_key_path(settings)
    root = registry.root()
    if root is None:
        key, _ = load_or_create(path)
        return key, registry.init_root(key), True
    if path.exists():
        key = read_private_key(path)
        if private_key_id(key) == root.key_id:
            return key, root, False
    return None, root, False

"""The worker's key registered for tests, so the heads it signs verify against a trust root.

``register_worker(data_dir, key_path, keys_dir)`` registers the worker's public key (kind
``worker``; the key in ``key_path``, made there if there is none) in the registry database under
``data_dir`` if it is not registered yet, certified by the test identity admin
(``tests.identity_fixtures``), and returns the trust root's key id to pin. Register before the
worker signs anything: a key counts only from its registration on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatekeeper.adapters.anchors import AnchorStore
from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.dossier.collect import journal_source
from gatekeeper.identity.heads import load_or_create_key
from gatekeeper.identity.keys import PrincipalKind, key_id_of
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.settings import Settings
from gatekeeper.statements import public_key_b64
from tests import identity_fixtures

#: The principal the tests register worker keys under.
WORKER = "gatekeeper-worker"


def register_worker(data_dir: Path, key_path: Path | None, keys_dir: Path) -> str:
    """Register the worker's key (once) in ``data_dir``'s registry; the trust root's key id."""
    worker_key = load_or_create_key(key_path or data_dir / "worker-key.pem")
    registry = IdentityRegistry(Settings(data_dir=data_dir).effective_registry_url)
    try:
        public = public_key_b64(worker_key)
        if registry.key(key_id_of(public)) is None:
            registry.register(
                principal=WORKER,
                principal_kind=PrincipalKind.WORKER,
                public_key=public,
                admin_key=identity_fixtures.admin_key(registry, keys_dir),
            )
        root = registry.root()
    finally:
        registry.close()
    if root is None:  # pragma: no cover - admin_key made one
        raise RuntimeError("the registry has no trust root")
    return root.key_id


@contextmanager
def dossier_sources(data_dir: Path, url: str | None = None) -> Iterator[dict[str, Any]]:
    """``collect_dossier``'s keyword arguments for the deliveries, keys and anchors in the
    registry (``url``, else ``data_dir``'s; what ``gatekeeper audit export`` passes)."""
    url = url or Settings(data_dir=data_dir).effective_registry_url
    with (
        IdentityRegistry(url) as registry,
        AnchorStore(url) as anchors,
        DeliveryStore(url) as deliveries,
        DatabaseAuditStore(url) as chains,
    ):
        yield {
            "deliveries": deliveries.lines,
            "deliveries_source": journal_source(deliveries.url),
            "key_chain": registry.chain_to_root,
            "anchors": anchors.anchors,
            "anchors_source": anchors.url,
            "sso_proof": registry.sso_link_entries,
            "audit_events": chains.read,
        }

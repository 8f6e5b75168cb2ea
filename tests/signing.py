"""Signing keys for tests: one deterministic Ed25519 key per person, and a key directory.

Every test worker installs a :class:`MemoryDirectory` (``gatekeeper.identity.authority``) that
registers the key of every person of the test policies' rosters and of the shipped policies,
plus the worker's own key; the ``Releases`` and ``Orders`` the tests use sign with
:func:`person_key`, so tests keep asserting what they asserted. A person's key is derived from
their id (tests only), so a CLI subprocess finds the same key in a keys dir
(:func:`write_keys`).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.identity.keys import KeyRecord, PrincipalKind, certificate_bytes, key_id_of
from gatekeeper.signed_requests import ACTOR_FIELDS, release_binding
from gatekeeper.signer import Signer
from gatekeeper.statements import public_key_b64, sign_request

if TYPE_CHECKING:
    from gatekeeper.identity.registry import IdentityRegistry
    from gatekeeper.releases import Releases

#: When every test key becomes valid.
VALID_FROM = datetime(2020, 1, 1, tzinfo=UTC)
#: The principal of the test worker's own key.
WORKER = "test-worker"


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(f"gatekeeper-test-key:{label}".encode()).digest()
    )


def person_key(person: str) -> Ed25519PrivateKey:
    """The test key of ``person`` (the same in every process)."""
    return _key(f"person:{person}")


def worker_key() -> Ed25519PrivateKey:
    return _key(f"worker:{WORKER}")


ROOT = _key("root")


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def key_id(key: Ed25519PrivateKey) -> str:
    return key_id_of(public_key_b64(key))


def record_for(
    key: Ed25519PrivateKey,
    principal: str,
    *,
    kind: PrincipalKind = PrincipalKind.PERSON,
    valid_from: datetime = VALID_FROM,
    valid_until: datetime | None = None,
) -> KeyRecord:
    """A key record certified by the test root."""
    draft = KeyRecord(
        key_id=key_id(key),
        principal=principal,
        principal_kind=kind,
        public_key=public_key_b64(key),
        valid_from=valid_from,
        valid_until=valid_until,
        certified_by=key_id(ROOT),
        certificate=base64.b64encode(b"\0" * 64).decode("ascii"),
    )
    certificate = base64.b64encode(ROOT.sign(certificate_bytes(draft))).decode("ascii")
    return draft.model_copy(update={"certificate": certificate})


class MemoryDirectory:
    """A ``KeyDirectory`` in memory (tests; the worker's real one is the identity registry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._sso: dict[tuple[str, str], str] = {}

    def key(self, key_id: str) -> KeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def sso_person(self, issuer: str, subject: str) -> str | None:
        with self._lock:
            return self._sso.get((issuer, subject))

    def link_sso(self, person: str, issuer: str, subject: str) -> None:
        with self._lock:
            self._sso[(issuer, subject)] = person

    def add(self, record: KeyRecord) -> KeyRecord:
        with self._lock:
            self._records[record.key_id] = record
        return record

    def add_people(self, people: Iterable[str]) -> None:
        for person in people:
            self.add(record_for(person_key(person), person))

    def add_worker(self) -> None:
        self.add(record_for(worker_key(), WORKER, kind=PrincipalKind.WORKER))

    def revoke(self, key_id: str, at: datetime | None = None, reason: str = "test") -> KeyRecord:
        with self._lock:
            record = self._records[key_id].model_copy(
                update={
                    "revoked_at": at or datetime.now(UTC) - timedelta(seconds=1),
                    "revoked_reason": reason,
                }
            )
            self._records[key_id] = record
        return record


@functools.cache
def roster_people() -> list[str]:
    """Everyone on the test policies' rosters and the shipped policies' rosters."""
    from gatekeeper.policy import load_default_policy, load_demo_policy
    from tests import factories

    people = {p.id for p in factories.ROSTER}
    for loaded in (load_default_policy(), load_demo_policy()):
        people.update(p.id for p in loaded.policy.roster)
    return sorted(people)


def directory() -> MemoryDirectory:
    """A directory with every roster person's key and the test worker's key."""
    found = MemoryDirectory()
    found.add_people(roster_people())
    found.add_worker()
    return found


def signer() -> Signer:
    """Signs every request with its actor's test key."""
    return Signer(keys=person_key)


#: People on no roster whom tests name (their requests are refused by the rules, not for want
#: of a key on the client's side).
STRANGERS = ("mallory", "nobody", "intern.nobody", "eve.outsider")


def write_keys(keys_dir: Path, people: Iterable[str] | None = None) -> Path:
    """Write ``<person>.pem`` for ``people`` (default: every roster person and the strangers
    tests name) into ``keys_dir``: what a CLI run by the test signs with."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    for person in people if people is not None else [*roster_people(), *STRANGERS]:
        path = keys_dir / f"{person}.pem"
        path.write_bytes(pem(person_key(person)))
        path.chmod(0o600)
    return keys_dir


@functools.cache
def shared_keys_dir() -> Path:
    """A keys dir with every test person's key, for CLI subprocesses (one per test process)."""
    return write_keys(Path(tempfile.mkdtemp(prefix="gatekeeper-test-keys-")))


def write_worker_key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem(worker_key()))
    path.chmod(0o600)
    return path


async def signed(releases: Releases, release_id: str, action: str, body: Any, **over: Any) -> Any:
    """``body`` (plain JSON, as a raw client sends it) signed by its actor's test key over the
    release's current binding: an honest request. A body without a string actor is returned
    as is (a malformed request is refused before any signature counts)."""
    actor = body.get(ACTOR_FIELDS[action]) if isinstance(body, dict) else None
    if not isinstance(actor, str):
        return body
    binding = over.pop("binding", None) or release_binding(await releases.status(release_id))
    # An access order's request is relayed (and signed) by a worker.
    own = worker_key() if actor.startswith("access-order") else person_key(actor)
    return sign_request(
        over.pop("key", None) or own,
        action=action,
        actor=actor,
        request=body,
        binding=binding,
        **over,
    )


@contextlib.contextmanager
def trusted(task_queue: str) -> Iterator[MemoryDirectory]:
    """Workers on ``task_queue`` trust the test keys (for tests that make their own queue)."""
    from gatekeeper.identity import authority

    found = authority.directory_for(task_queue)
    if isinstance(found, MemoryDirectory):  # the test's task_queue fixture installed it
        yield found
        return
    installed = directory()
    authority.install(task_queue, installed)
    try:
        yield installed
    finally:
        authority.uninstall(task_queue, installed)


def register_everyone(registry: IdentityRegistry, admin_keys_dir: Path) -> Ed25519PrivateKey:
    """Register every test person's key and the test worker's key in the worker's identity
    registry (the same keys :func:`person_key` and :func:`worker_key` give, so a test signs
    without reading files). Returns the identity admin's key (to register or revoke more)."""
    from tests.identity_fixtures import admin_key

    admin = admin_key(registry, admin_keys_dir)
    for person in roster_people():
        key = person_key(person)
        if registry.key(key_id(key)) is None:
            registry.register(
                principal=person,
                public_key=public_key_b64(key),
                valid_from=VALID_FROM,
                admin_key=admin,
            )
    if registry.key(key_id(worker_key())) is None:
        registry.register(
            principal=WORKER,
            principal_kind=PrincipalKind.WORKER,
            public_key=public_key_b64(worker_key()),
            valid_from=VALID_FROM,
            admin_key=admin,
        )
    return admin

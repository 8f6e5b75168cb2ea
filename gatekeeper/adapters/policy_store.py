"""The policy store: installed policy versions, in the access registry's database. No Temporal.

A policy admin installs a version (``gatekeeper policy install``); workers resolve a release's
``policy_id@version`` (or the store's default) here and nowhere else, so the person starting a
release names the rules but never supplies them. An installed version is immutable: installing the
same content again is a no-op that says so; different content under the same id and version is
refused. Each row records who installed it and when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gatekeeper.adapters.registry.database import Database
from gatekeeper.adapters.registry.engine import (
    SQLITE_BUSY_TIMEOUT,
)
from gatekeeper.adapters.registry.tables import policies, policy_default
from gatekeeper.errors import InputError, PolicyError
from gatekeeper.models.installed import (
    InstalledPolicy,
    parse_policy_ref,
    policy_ref,
)
from gatekeeper.models.policy import Policy
from gatekeeper.policy import (
    check_policy,
    load_default_policy,
    load_demo_policy,
    policy_sha256,
)

_DEFAULT_SLOT = "default"


class PolicyNotInstalled(InputError):
    """No installed version answers to the reference (or no default is set)."""


class PolicyConflict(InputError):
    """Different content under an id@version that is already installed."""


@dataclass(frozen=True)
class InstallResult:
    """What :meth:`PolicyStore.install` did."""

    installed: InstalledPolicy
    created: bool
    default_changed: bool

    @property
    def message(self) -> str:
        what = "installed" if self.created else "already installed (identical content; unchanged)"
        text = f"{self.installed.ref} {what}, sha256 {self.installed.sha256}"
        if self.default_changed:
            text += "; it is now the default"
        return text


def versioned_by_content(policy: Policy) -> Policy:
    """``policy`` with its version suffixed by a short digest of its content (``1+3f2a9c01``).

    For programs that build many variants of one policy in code (tests, benchmarks): each distinct
    content gets its own installable version, so installing never collides.
    """
    base = policy.model_copy(update={"version": policy.version.split("+", 1)[0]})
    return policy.model_copy(update={"version": f"{base.version}+{policy_sha256(base)[:10]}"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PolicyStore(Database):
    """Installed policies behind one SQLAlchemy URL (the access registry's). Thread-safe.

    Opening upgrades the schema to the newest migration, like :class:`AccessRegistry`.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
        busy_timeout: float = SQLITE_BUSY_TIMEOUT,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self._clock = clock

    # -- installing --------------------------------------------------------------------------

    def install(self, policy: Policy, *, by: str, default: bool = False) -> InstallResult:
        """Install ``policy`` as ``policy_id@version`` (after the full policy check).

        Re-installing identical content changes nothing (``created`` is false). With ``default``,
        the version also becomes the store's default; the first version installed into an empty
        store becomes the default too.

        Raises:
            PolicyError: the policy fails :func:`~gatekeeper.policy.check_policy`.
            PolicyConflict: another content is installed under the same id and version.
            InputError: the version cannot be named in a reference.
        """
        ref = policy_ref(policy.policy_id, policy.version)
        parse_policy_ref(ref)
        problems = check_policy(policy)
        if problems:
            raise PolicyError(ref, problems)
        digest = policy_sha256(policy)
        now = self._clock()
        with self._write(f"install policy {ref}") as connection:
            row = _row(connection, policy.policy_id, policy.version)
            if row is not None and row.sha256 != digest:
                raise PolicyConflict(
                    f"policy {ref} is already installed with sha256 {row.sha256[:16]}… "
                    f"(by {row.installed_by}); an installed version never changes — give the new "
                    "content a new version"
                )
            created = row is None
            if created:
                connection.execute(
                    sa.insert(policies).values(
                        policy_id=policy.policy_id,
                        version=policy.version,
                        sha256=digest,
                        content=policy.model_dump(mode="json"),
                        title=policy.title,
                        installed_by=by,
                        installed_at=now,
                    )
                )
            current = _default(connection)
            default_changed = False
            if (default or current is None) and current != (policy.policy_id, policy.version):
                _set_default(connection, policy.policy_id, policy.version, by, now)
                default_changed = True
            installed = self._installed(connection, policy.policy_id, policy.version)
        return InstallResult(installed, created, default_changed)

    def set_default(self, ref: str, *, by: str) -> InstalledPolicy:
        """Make the installed ``ref`` the default for releases that name no policy."""
        policy_id, version = parse_policy_ref(ref)
        with self._write(f"set default policy {ref}") as connection:
            if _row(connection, policy_id, version) is None:
                raise _not_installed(ref)
            _set_default(connection, policy_id, version, by, self._clock())
            return self._installed(connection, policy_id, version)

    # -- reading -----------------------------------------------------------------------------

    def get(self, ref: str) -> InstalledPolicy:
        """The installed version ``policy_id@version``.

        Raises:
            PolicyNotInstalled: no such version is installed.
        """
        policy_id, version = parse_policy_ref(ref)
        with self._read(f"read policy {ref}") as connection:
            if _row(connection, policy_id, version) is None:
                raise _not_installed(ref)
            return self._installed(connection, policy_id, version)

    def default(self) -> InstalledPolicy | None:
        with self._read("read the default policy") as connection:
            current = _default(connection)
            return self._installed(connection, *current) if current else None

    def resolve(self, ref: str | None) -> InstalledPolicy:
        """``ref``'s installed version, or the default when ``ref`` is ``None``."""
        if ref is not None:
            return self.get(ref)
        found = self.default()
        if found is None:
            raise PolicyNotInstalled(
                "no default policy is installed; install one with "
                "`gatekeeper policy install FILE --default` or name one with --policy ID@VERSION"
            )
        return found

    def list(self) -> list[InstalledPolicy]:
        """Every installed version, oldest install first."""
        with self._read("list policies") as connection:
            current = _default(connection)
            rows = connection.execute(
                sa.select(policies).order_by(
                    policies.c.installed_at, policies.c.policy_id, policies.c.version
                )
            ).all()
        return [_model(row, current) for row in rows]

    def _installed(self, connection: Connection, policy_id: str, version: str) -> InstalledPolicy:
        row = _row(connection, policy_id, version)
        assert row is not None
        return _model(row, _default(connection))


#: Who ``gatekeeper dev`` and the demo record as installing the packaged policies.
PACKAGED_INSTALLER = "gatekeeper-dev"


def install_packaged(store: PolicyStore, *, by: str = PACKAGED_INSTALLER) -> list[str]:
    """Install the packaged policies (the default standard, then the demo's), idempotently.

    The default standard becomes the store's default if the store has none. Returns one line per
    policy saying what happened; a packaged version that conflicts with content already installed
    under its id@version is reported, not installed.
    """
    lines = []
    for loaded in (load_default_policy(), load_demo_policy()):
        try:
            lines.append(store.install(loaded.policy, by=by).message)
        except PolicyConflict as err:
            lines.append(f"not installed: {err}")
    return lines


def _row(connection: Connection, policy_id: str, version: str) -> Any:
    return connection.execute(
        sa.select(policies).where(policies.c.policy_id == policy_id, policies.c.version == version)
    ).first()


def _default(connection: Connection) -> tuple[str, str] | None:
    row = connection.execute(
        sa.select(policy_default.c.policy_id, policy_default.c.version).where(
            policy_default.c.slot == _DEFAULT_SLOT
        )
    ).first()
    return (row.policy_id, row.version) if row else None


def _set_default(
    connection: Connection, policy_id: str, version: str, by: str, now: datetime
) -> None:
    connection.execute(sa.delete(policy_default).where(policy_default.c.slot == _DEFAULT_SLOT))
    connection.execute(
        sa.insert(policy_default).values(
            slot=_DEFAULT_SLOT, policy_id=policy_id, version=version, set_by=by, set_at=now
        )
    )


def _model(row: Any, current: tuple[str, str] | None) -> InstalledPolicy:
    return InstalledPolicy(
        policy_id=row.policy_id,
        version=row.version,
        sha256=row.sha256,
        installed_by=row.installed_by,
        installed_at=row.installed_at,
        is_default=current == (row.policy_id, row.version),
        policy=Policy.model_validate(row.content),
    )


def _not_installed(ref: str) -> PolicyNotInstalled:
    return PolicyNotInstalled(
        f"policy {ref} is not installed; install it with `gatekeeper policy install FILE` "
        "(see `gatekeeper policy list`)"
    )


__all__ = [
    "InstallResult",
    "PolicyConflict",
    "PolicyNotInstalled",
    "PolicyStore",
    "install_packaged",
    "versioned_by_content",
]

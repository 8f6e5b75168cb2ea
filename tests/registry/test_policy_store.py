"""The policy store: installed versions are immutable, audited, and resolved by reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.adapters.policy_store import (
    PolicyConflict,
    PolicyNotInstalled,
    PolicyStore,
    install_packaged,
    versioned_by_content,
)
from gatekeeper.errors import InputError, PolicyError
from gatekeeper.models import ApprovalGateStage, LaunchStage, QuorumRequirement
from gatekeeper.policy import policy_sha256
from tests import factories

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class TestInstall:
    """An install records content, sha256, installer and time; the same content again changes
    nothing; other content under the same id@version is refused; a broken policy is refused."""

    def test_install_reinstall_conflict(self, empty_url: str) -> None:
        policy = factories.policy(version="3")
        with PolicyStore(empty_url, clock=lambda: AT) as store:
            first = store.install(policy, by="pat.admin")
            assert (first.created, first.default_changed) == (True, True), "first is the default"
            again = store.install(policy, by="mallory")
            assert not again.created and not again.default_changed
            assert "already installed (identical content; unchanged)" in again.message
            evil = factories.policy(version="3", stages=[LaunchStage(id="public_launch")])
            with pytest.raises(PolicyConflict, match="already installed with sha256"):
                store.install(evil, by="mallory")

            [row] = store.list()
            assert (row.ref, row.installed_by, row.installed_at) == (
                "test-policy@3",
                "pat.admin",
                AT,
            )
            assert row.sha256 == policy_sha256(policy) and row.policy == policy
            assert row.is_default

    def test_a_policy_that_fails_the_check_is_not_installed(self, empty_url: str) -> None:
        broken = factories.policy(
            stages=[
                ApprovalGateStage(id="review", quorum=[QuorumRequirement(roles=["legal"], count=5)])
            ]
        )
        with PolicyStore(empty_url) as store:
            with pytest.raises(PolicyError, match="needs 5 people holding legal"):
                store.install(broken, by="pat.admin")
            assert store.list() == []

    def test_a_version_that_cannot_be_named_is_refused(self, empty_url: str) -> None:
        with PolicyStore(empty_url) as store, pytest.raises(InputError, match="ID@VERSION"):
            store.install(factories.policy(version="1 beta"), by="pat.admin")


class TestResolve:
    """A reference resolves to its installed version; no reference to the default; anything
    else is a one-line PolicyNotInstalled."""

    def test_default_and_references(self, empty_url: str) -> None:
        v1, v2 = factories.policy(version="1"), factories.policy(version="2")
        with PolicyStore(empty_url) as store:
            with pytest.raises(PolicyNotInstalled, match="no default policy is installed"):
                store.resolve(None)
            store.install(v1, by="pat.admin")
            store.install(v2, by="pat.admin")
            assert store.resolve(None).version == "1"
            store.install(v2, by="pat.admin", default=True)
            assert store.resolve(None).version == "2"
            assert store.resolve("test-policy@1").policy == v1
            with pytest.raises(PolicyNotInstalled, match=r"^policy test-policy@9 is not installed"):
                store.resolve("test-policy@9")
            with pytest.raises(InputError, match="is not ID@VERSION"):
                store.resolve("test-policy")

    def test_variants_built_in_code_get_their_own_versions(self, empty_url: str) -> None:
        a = versioned_by_content(factories.policy(window=timedelta(days=30)))
        b = versioned_by_content(factories.policy(window=timedelta(days=1)))
        assert a.version != b.version and a.version.startswith("1+")
        assert versioned_by_content(a) == a, "idempotent"
        with PolicyStore(empty_url) as store:
            store.install(a, by="t")
            store.install(b, by="t")
            assert len(store.list()) == 2

    def test_packaged_policies(self, empty_url: str) -> None:
        with PolicyStore(empty_url) as store:
            lines = install_packaged(store)
            assert lines[0].startswith("voluntary-standard@1 installed")
            assert install_packaged(store)[0].startswith("voluntary-standard@1 already installed")
            default = store.default()
            assert default is not None and default.ref == "voluntary-standard@1"

"""The identity registry: who may register keys, when a key counts, and a log no one can rewrite."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper import signing
from gatekeeper.adapters.registry.migrate import head_revision
from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.identity.keys import PrincipalKind, certificate_bytes, key_id_of
from gatekeeper.identity.registry import (
    IdentityRefused,
    IdentityRegistry,
    UnknownKey,
    private_key_id,
)
from tests.identity.tampering import drop_log_triggers, edit_log_body, insert_key, tampering
from tests.identity_fixtures import admin_key, register_people, root_key

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def url(database_url: str) -> str:
    """An empty registry database on each backend (a SQLite file, a PostgreSQL database)."""
    return database_url


@pytest.fixture
def registry(url: str, clock: Clock) -> Iterator[IdentityRegistry]:
    with IdentityRegistry(url, clock=clock) as opened:
        yield opened


def public(key: Ed25519PrivateKey) -> str:
    return signing.public_key_b64(key)


def snapshot(registry: IdentityRegistry) -> tuple[object, ...]:
    return (registry.keys(), registry.log())


class TestTrustRoot:
    """The trust root certifies itself, is the log's first entry, and there is only one."""

    def test_init_root_registers_a_self_certified_admin(self, registry: IdentityRegistry) -> None:
        key = Ed25519PrivateKey.generate()

        root = registry.init_root(key)

        assert registry.revision == head_revision()
        assert root.key_id == key_id_of(public(key)) == root.certified_by
        assert root.principal_kind is PrincipalKind.ADMIN
        assert registry.root() == root == registry.key(root.key_id)
        assert [(e.seq, e.action, e.key_id) for e in registry.log()] == [
            (1, "init_root", root.key_id)
        ]
        assert registry.chain_to_root(root.key_id) == [root]
        assert registry.verify_log(trust_root=root.key_id) == []

    def test_a_second_root_is_refused(self, registry: IdentityRegistry) -> None:
        registry.init_root(Ed25519PrivateKey.generate())
        before = snapshot(registry)

        with pytest.raises(IdentityRefused, match="already has a trust root"):
            registry.init_root(Ed25519PrivateKey.generate())
        assert snapshot(registry) == before

    def test_the_root_cannot_be_revoked(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        root = root_key(registry, tmp_path)

        with pytest.raises(IdentityRefused, match="trust root and cannot be revoked"):
            registry.revoke(private_key_id(root), reason="oops", admin_key=root)

    def test_a_pinned_root_other_than_the_registry_s_fails_verification(
        self, registry: IdentityRegistry
    ) -> None:
        registry.init_root(Ed25519PrivateKey.generate())
        other = key_id_of(public(Ed25519PrivateKey.generate()))

        assert registry.verify_log(trust_root=other) == [
            f"the identity log's trust root is {registry.root().key_id}, not the pinned {other}"  # type: ignore[union-attr]
        ]


class TestRegistering:
    """Only a registered admin key valid now registers keys; each is certified and chained."""

    def test_a_registered_key_is_certified_by_the_admin_and_chains_to_the_root(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        record = registry.keys("lena.fischer")[0]

        assert record.key_id == key_id_of(public(keys["lena.fischer"]))
        chain = registry.chain_to_root(record.key_id)
        assert [r.principal for r in chain] == ["lena.fischer", "identity-admin", "identity-root"]
        assert signing.verify(
            chain[1].public_key,
            certificate_bytes(record),
            record.certificate,
        )
        assert (tmp_path / "lena.fischer.pem").stat().st_mode & 0o777 == 0o600

    def test_a_key_not_in_the_registry_cannot_register(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        root_key(registry, tmp_path)
        before = snapshot(registry)
        stranger = Ed25519PrivateKey.generate()

        with pytest.raises(IdentityRefused, match=r"admin key ed25519:\w+ is not registered"):
            registry.register(
                principal="eve",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=stranger,
            )
        assert snapshot(registry) == before

    def test_a_person_s_key_cannot_register(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        before = snapshot(registry)

        with pytest.raises(IdentityRefused, match=r"belongs to lena\.fischer, a person, not an"):
            registry.register(
                principal="eve",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=keys["lena.fischer"],
            )
        assert snapshot(registry) == before

    def test_a_revoked_admin_cannot_register(
        self, registry: IdentityRegistry, tmp_path: Path, clock: Clock
    ) -> None:
        admin = admin_key(registry, tmp_path)
        registry.revoke(
            private_key_id(admin), reason="left", admin_key=root_key(registry, tmp_path)
        )
        clock.now += timedelta(seconds=1)
        before = snapshot(registry)

        with pytest.raises(IdentityRefused, match=r"was revoked at .*can no longer change keys"):
            registry.register(
                principal="eve", public_key=public(Ed25519PrivateKey.generate()), admin_key=admin
            )
        assert snapshot(registry) == before

    def test_an_expired_admin_cannot_register(
        self, registry: IdentityRegistry, tmp_path: Path, clock: Clock
    ) -> None:
        temporary = Ed25519PrivateKey.generate()
        registry.register(
            principal="temp-admin",
            principal_kind="admin",
            public_key=public(temporary),
            valid_until=T0 + timedelta(hours=1),
            admin_key=root_key(registry, tmp_path),
        )
        clock.now = T0 + timedelta(hours=2)

        with pytest.raises(IdentityRefused, match="expired at"):
            registry.register(
                principal="eve",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=temporary,
            )

    def test_someone_else_s_public_key_is_refused(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        before = snapshot(registry)

        with pytest.raises(IdentityRefused, match="already registered to someone else"):
            registry.register(
                principal="eve",
                public_key=public(keys["lena.fischer"]),
                admin_key=admin_key(registry, tmp_path),
            )
        with pytest.raises(IdentityRefused, match=r"already registered to lena\.fischer"):
            registry.register(
                principal="lena.fischer",
                public_key=public(keys["lena.fischer"]),
                admin_key=admin_key(registry, tmp_path),
            )
        assert snapshot(registry) == before

    def test_a_principal_keeps_one_kind(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        register_people(registry, ["lena.fischer"], tmp_path)

        with pytest.raises(IdentityRefused, match="already has keys as a person, not a admin"):
            registry.register(
                principal="lena.fischer",
                principal_kind="admin",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=admin_key(registry, tmp_path),
            )

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"principal": "Lena Fischer"}, "is not a principal id"),
            ({"principal_kind": "robot"}, "is not a principal kind"),
            ({"public_key": "not base64!"}, "public key: public key is not valid base64"),
            ({"public_key": "AAAA"}, "is 32 bytes, this one is 3"),
            ({"valid_until": T0 - timedelta(days=1)}, "is not after valid from"),
        ],
    )
    def test_malformed_registrations_are_refused_in_one_line(
        self, registry: IdentityRegistry, tmp_path: Path, fields: dict[str, object], message: str
    ) -> None:
        admin = admin_key(registry, tmp_path)
        before = snapshot(registry)
        request: dict[str, object] = {
            "principal": "lena.fischer",
            "public_key": public(Ed25519PrivateKey.generate()),
            "admin_key": admin,
            **fields,
        }

        with pytest.raises(IdentityRefused, match=message) as refused:
            registry.register(**request)  # type: ignore[arg-type]
        assert "\n" not in str(refused.value)
        assert snapshot(registry) == before

    def test_registering_before_a_root_exists_says_to_init(
        self, registry: IdentityRegistry
    ) -> None:
        with pytest.raises(IdentityRefused, match="gatekeeper identity init"):
            registry.register(
                principal="eve",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=Ed25519PrivateKey.generate(),
            )
        assert registry.log() == []


class TestValidity:
    """A key counts from valid_from, until valid_until or its revocation, whichever comes first."""

    def test_validity_window(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        key = Ed25519PrivateKey.generate()
        record = registry.register(
            principal="lena.fischer",
            public_key=public(key),
            valid_from=T0 + timedelta(days=1),
            valid_until=T0 + timedelta(days=10),
            admin_key=admin_key(registry, tmp_path),
        )

        assert not record.valid_at(T0)
        assert "not valid before" in (record.why_not_valid_at(T0) or "")
        assert record.valid_at(T0 + timedelta(days=1))
        assert record.valid_at(T0 + timedelta(days=9, hours=23))
        assert not record.valid_at(T0 + timedelta(days=10))
        assert registry.valid_keys("lena.fischer", T0 + timedelta(days=2)) == [record]
        assert registry.valid_keys("lena.fischer", T0) == []

    def test_revocation_ends_validity_from_its_time(
        self, registry: IdentityRegistry, tmp_path: Path, clock: Clock
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        key_id = private_key_id(keys["lena.fischer"])
        clock.now = T0 + timedelta(hours=3)

        revoked = registry.revoke(
            key_id, reason="laptop lost", admin_key=admin_key(registry, tmp_path)
        )

        assert revoked.revoked_at == clock.now
        assert revoked.revoked_reason == "laptop lost"
        assert registry.key(key_id) == revoked
        assert revoked.valid_at(T0 + timedelta(hours=2))
        assert not revoked.valid_at(clock.now)
        assert "was revoked at" in (revoked.why_not_valid_at(clock.now) or "")
        # The certificate is unchanged: revocation is its own signed log entry.
        assert registry.chain_to_root(key_id)[0] == revoked
        assert registry.log()[-1].action == "revoke"
        assert registry.verify_log() == []

    def test_a_revocation_can_move_earlier_but_not_later(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        key_id = private_key_id(keys["lena.fischer"])
        admin = admin_key(registry, tmp_path)
        registry.revoke(key_id, at=T0 + timedelta(days=5), reason="leaving", admin_key=admin)

        with pytest.raises(IdentityRefused, match="already revoked"):
            registry.revoke(key_id, at=T0 + timedelta(days=6), reason="again", admin_key=admin)
        moved = registry.revoke(
            key_id, at=T0 + timedelta(days=1), reason="compromised", admin_key=admin
        )

        assert moved.revoked_at == T0 + timedelta(days=1)
        assert registry.verify_log() == []

    def test_revoking_an_unknown_key_or_without_reason_is_refused(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        admin = admin_key(registry, tmp_path)
        before = snapshot(registry)

        with pytest.raises(UnknownKey, match="is not registered"):
            registry.revoke("ed25519:" + "0" * 32, reason="x", admin_key=admin)
        with pytest.raises(IdentityRefused, match="needs a reason"):
            registry.revoke(private_key_id(keys["lena.fischer"]), reason="  ", admin_key=admin)
        assert snapshot(registry) == before

    def test_rotation_registers_the_new_key_and_retires_the_old_after_the_grace(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        old_id = private_key_id(keys["lena.fischer"])
        new_key = Ed25519PrivateKey.generate()

        new = registry.rotate(
            old_id,
            public_key=public(new_key),
            grace=timedelta(hours=1),
            admin_key=admin_key(registry, tmp_path),
        )

        old = registry.key(old_id)
        assert old is not None and old.revoked_at == T0 + timedelta(hours=1)
        assert old.revoked_reason == f"rotated to {new.key_id}"
        assert (new.principal, new.principal_kind, new.valid_from) == (
            "lena.fischer",
            PrincipalKind.PERSON,
            T0,
        )
        assert old.valid_at(T0 + timedelta(minutes=59)) and new.valid_at(T0)
        assert not old.valid_at(T0 + timedelta(hours=1))
        assert registry.log()[-1].action == "rotate"
        assert registry.verify_log() == []


class TestIdentityLog:
    """Every change is a signed, hash-chained entry; editing the log or the key table is found."""

    @pytest.fixture
    def filled(self, registry: IdentityRegistry, tmp_path: Path) -> IdentityRegistry:
        keys = register_people(registry, ["lena.fischer", "sec.two"], tmp_path)
        registry.revoke(
            private_key_id(keys["sec.two"]), reason="left", admin_key=admin_key(registry, tmp_path)
        )
        return registry

    def test_entries_chain_and_are_signed_by_the_admin_that_made_them(
        self, filled: IdentityRegistry, tmp_path: Path
    ) -> None:
        log = filled.log()

        assert [e.action for e in log] == [
            "init_root",
            "register",
            "register",
            "register",
            "revoke",
        ]
        assert [e.seq for e in log] == [1, 2, 3, 4, 5]
        assert log[0].prev_hash == "0" * 64
        for before, after in itertools.pairwise(log):
            assert after.prev_hash == before.hash
        root, admin = root_key(filled, tmp_path), admin_key(filled, tmp_path)
        assert [e.by_key_id for e in log] == [private_key_id(root)] * 2 + [
            private_key_id(admin)
        ] * 3
        assert filled.verify_log(trust_root=private_key_id(root)) == []

    def test_the_database_refuses_to_update_or_delete_an_entry(
        self, filled: IdentityRegistry, url: str
    ) -> None:
        for statement in ("UPDATE identity_log SET action = 'x'", "DELETE FROM identity_log"):
            # SQLite's RAISE(ABORT) is a constraint failure; PostgreSQL's RAISE EXCEPTION is not.
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), tampering(url) as c:
                c.execute(sa.text(statement))
        assert len(filled.log()) == 5

    def _rewrite(self, url: str, *statements: str) -> None:
        """What an attacker with the database does: drop the triggers, then edit."""
        with tampering(url) as connection:
            drop_log_triggers(connection)
            for statement in statements:
                connection.execute(sa.text(statement))

    def test_an_edited_entry_fails_verification(self, filled: IdentityRegistry, url: str) -> None:
        def to_eve(body: dict[str, object]) -> dict[str, object]:
            return dict(body, key=dict(body["key"], principal="eve"))  # type: ignore[call-overload]

        with tampering(url) as connection:
            drop_log_triggers(connection)
            edit_log_body(connection, 3, to_eve)

        assert filled.verify_log() == [
            "identity log entry 3: its hash does not match its content (the entry was edited)"
        ]

    def test_a_rehashed_entry_fails_on_its_signature(
        self, filled: IdentityRegistry, url: str
    ) -> None:
        entry = filled.log()[4]
        body = dict(entry.body, revoke=dict(entry.body["revoke"], reason="other"))
        forged = sha256_hex(canonical_json(body))
        with tampering(url) as connection:
            drop_log_triggers(connection)
            edit_log_body(connection, 5, lambda _: body, hash=forged)

        problems = filled.verify_log()
        assert len(problems) == 1
        assert problems[0].startswith("identity log entry 5: its signature does not verify")

    def test_a_deleted_entry_breaks_the_chain(self, filled: IdentityRegistry, url: str) -> None:
        self._rewrite(url, "DELETE FROM identity_log WHERE seq = 5")

        assert filled.verify_log() == [
            f"key {filled.keys('sec.two')[0].key_id} (sec.two) differs from what the identity log says"
        ]
        with tampering(url) as connection:  # the triggers are gone already
            connection.execute(sa.text("DELETE FROM identity_log WHERE seq = 3"))
        assert filled.verify_log()[0] == "identity log entry 4: out of sequence (expected 3)"

    def test_a_key_written_into_the_table_by_hand_is_found(
        self, filled: IdentityRegistry, url: str
    ) -> None:
        forged = Ed25519PrivateKey.generate()
        key_id = private_key_id(forged)
        admin = filled.keys("identity-admin")[0]
        with tampering(url) as connection:
            insert_key(
                connection,
                key_id=key_id,
                principal="eve",
                principal_kind="admin",
                kind="ed25519",
                public_key=public(forged),
                certified_by=admin.key_id,
                certificate="AAAA",
            )

        assert filled.verify_log() == [f"key {key_id} (eve) is not in the identity log"]
        with pytest.raises(IdentityRefused, match="does not verify"):
            filled.chain_to_root(key_id)
        # The validators' lookup does not return it, and it cannot act as an admin.
        assert filled.key(key_id) is None
        before = snapshot(filled)
        with pytest.raises(IdentityRefused, match=r"admin key .* is not trusted: the certificate"):
            filled.register(
                principal="mallory",
                public_key=public(Ed25519PrivateKey.generate()),
                admin_key=forged,
            )
        assert snapshot(filled) == before


class TestChain:
    """chain_to_root follows certificates to the self-certified root and checks each."""

    def test_a_registry_opened_with_another_pinned_root_trusts_none_of_its_keys(
        self, registry: IdentityRegistry, url: str, tmp_path: Path
    ) -> None:
        keys = register_people(registry, ["lena.fischer"], tmp_path)
        key_id = private_key_id(keys["lena.fischer"])
        other = key_id_of(public(Ed25519PrivateKey.generate()))
        root = registry.root()
        assert root is not None

        with IdentityRegistry(url, trust_root=root.key_id) as pinned:
            assert pinned.key(key_id) is not None
        with IdentityRegistry(url, trust_root=other) as elsewhere:
            assert elsewhere.key(key_id) is None
            with pytest.raises(IdentityRefused, match=f"not the pinned trust root {other}"):
                elsewhere.chain_to_root(key_id)

    def test_unknown_key(self, registry: IdentityRegistry) -> None:
        with pytest.raises(UnknownKey):
            registry.chain_to_root("ed25519:" + "1" * 32)

    def test_admins_registering_admins(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        second = Ed25519PrivateKey.generate()
        registry.register(
            principal="second-admin",
            principal_kind=PrincipalKind.ADMIN,
            public_key=public(second),
            admin_key=admin_key(registry, tmp_path),
        )
        person = registry.register(
            principal="lena.fischer",
            public_key=public(Ed25519PrivateKey.generate()),
            admin_key=second,
        )

        assert [r.principal for r in registry.chain_to_root(person.key_id)] == [
            "lena.fischer",
            "second-admin",
            "identity-admin",
            "identity-root",
        ]
        assert registry.verify_log() == []

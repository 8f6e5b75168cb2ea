"""Passkeys, single sign-on links and gateway keys in the identity registry, and their CLI.

A passkey is enrolled by a request (the console's, unsigned) and counts only once an identity
admin approves it: the approval registers a ``webauthn`` key, certified and logged like any key.
Links of OIDC identities to people, and their removal, are signed log entries too. The identity
log replays with all of them, and an edit to any is found. Refusals are one line and change
nothing.
"""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from gatekeeper import signing
from gatekeeper.adapters.registry.tables import identity_sso_links
from gatekeeper.canonical import canonical_json, sha256_hex
from gatekeeper.identity.keys import KeyKind, PrincipalKind
from gatekeeper.identity.log import certificate_ok
from gatekeeper.identity.registry import (
    MAX_PENDING_PASSKEYS,
    IdentityRefused,
    IdentityRegistry,
    UnknownKey,
)
from gatekeeper.signed_requests import attestation
from gatekeeper.statements import Binding, RequestSignature, sign_request
from tests.identity.tampering import drop_log_triggers, edit_log_body, insert_key, tampering
from tests.identity.test_cli import Cli as IdentityCli
from tests.identity_fixtures import ADMIN, admin_key, register_people
from tests.webauthn_soft import ORIGIN, RP_ID, SoftAuthenticator

ISSUER = "https://sso.example.com"


@pytest.fixture
def url(database_url: str) -> str:
    """An empty registry database on each backend (a SQLite file, a PostgreSQL database)."""
    return database_url


@pytest.fixture
def registry(url: str, tmp_path: Path) -> Iterator[IdentityRegistry]:
    with IdentityRegistry(url) as opened:
        register_people(opened, ["lena.fischer"], tmp_path / "keys")
        yield opened


def state(registry: IdentityRegistry) -> tuple[Any, ...]:
    return (
        registry.keys(),
        registry.log(),
        registry.passkey_enrollments(),
        registry.sso_links(),
    )


class TestPasskeyEnrollment:
    """Enrolled, a passkey waits; approved by an admin, it is a certified, logged key of its
    person; rejected, it never counts."""

    def test_enroll_then_approve(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        soft = SoftAuthenticator()
        pending = soft.enroll(registry, "lena.fischer", label="YubiKey 5")

        assert pending.state == "pending" and pending.key_id == soft.key_id
        assert registry.pending_passkeys() == [pending]
        assert registry.key(soft.key_id) is None
        assert registry.passkeys("lena.fischer") == []

        admin = admin_key(registry, tmp_path / "keys")
        record = registry.approve_passkey(pending.enrollment_id, admin)

        assert record.kind is KeyKind.WEBAUTHN and record.principal == "lena.fischer"
        assert (record.credential_id, record.rp_id, record.origin) == (
            soft.credential_id,
            RP_ID,
            ORIGIN,
        )
        assert registry.passkeys("lena.fischer") == [record]
        assert registry.key(soft.key_id) == record
        assert registry.pending_passkeys() == []
        [decided] = registry.passkey_enrollments("lena.fischer")
        assert decided.state == "approved" and decided.decided_by == record.certified_by
        assert registry.log()[-1].action == "approve_passkey"
        assert registry.verify_log() == []
        chain = registry.chain_to_root(soft.key_id)
        assert certificate_ok(chain[0], chain[1])

    def test_the_certificate_covers_the_passkey_fields(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        """Moving an approved passkey to another origin, relying party or credential breaks its
        certificate."""
        record = SoftAuthenticator().register(
            registry, "lena.fischer", admin_key(registry, tmp_path / "keys")
        )
        _, certifier, *_ = registry.chain_to_root(record.key_id)

        assert certificate_ok(record, certifier)
        for change in (
            {"origin": "https://evil.example"},
            {"rp_id": "evil.example"},
            {"credential_id": "A" * 22},
        ):
            assert not certificate_ok(record.model_copy(update=change), certifier), change

    def test_reject(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        soft = SoftAuthenticator()
        pending = soft.enroll(registry, "lena.fischer")
        admin = admin_key(registry, tmp_path / "keys")

        registry.reject_passkey(pending.enrollment_id, admin, "not a device we issued")

        assert registry.pending_passkeys() == []
        [decided] = registry.passkey_enrollments()
        assert decided.state == "rejected" and decided.reason == "not a device we issued"
        assert registry.key(soft.key_id) is None
        assert registry.log()[-1].action == "reject_passkey"
        assert registry.log()[-1].body["passkey"]["reason"] == "not a device we issued"
        assert registry.verify_log() == []

    def test_a_decided_enrollment_cannot_be_decided_again(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        admin = admin_key(registry, tmp_path / "keys")
        pending = SoftAuthenticator().enroll(registry, "lena.fischer")
        registry.reject_passkey(pending.enrollment_id, admin, "no")
        before = state(registry)

        with pytest.raises(IdentityRefused, match="was already rejected"):
            registry.approve_passkey(pending.enrollment_id, admin)
        with pytest.raises(UnknownKey, match="no passkey enrollment pk-000000000000"):
            registry.approve_passkey("pk-000000000000", admin)
        assert state(registry) == before

    def test_only_an_admin_approves(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        """A person's key (the console's operator, or the person themselves) cannot approve."""
        keys = register_people(registry, ["mallory"], tmp_path / "keys")
        pending = SoftAuthenticator().enroll(registry, "mallory")
        before = state(registry)

        with pytest.raises(IdentityRefused, match="not an identity admin"):
            registry.approve_passkey(pending.enrollment_id, keys["mallory"])
        assert state(registry) == before

    def test_malformed_enrollments_are_refused(self, registry: IdentityRegistry) -> None:
        soft = SoftAuthenticator()
        good: dict[str, Any] = {
            "credential_id": soft.credential_id,
            "public_key": soft.public_key,
            "rp_id": RP_ID,
            "origin": ORIGIN,
        }
        before = state(registry)
        not_on_curve = base64.b64encode(b"\x04" + b"\x01" * 64).decode()
        for change, needle in [
            ({"public_key": base64.b64encode(b"\x04" * 33).decode()}, "65-byte uncompressed"),
            ({"public_key": not_on_curve}, "not a point on P-256"),
            ({"credential_id": "short"}, "credential_id"),
            ({"origin": "https://console.example/path"}, "origin"),
            ({"origin": "javascript:alert(1)"}, "origin"),
            ({"rp_id": "Evil Example"}, "rp_id"),
            ({"rp_id": "evil.example"}, "is not the host of origin"),
        ]:
            with pytest.raises(IdentityRefused, match=needle):
                registry.enroll_passkey("lena.fischer", **{**good, **change})
        with pytest.raises(IdentityRefused, match="not a principal id"):
            registry.enroll_passkey("Lena Fischer", **good)
        assert state(registry) == before

    def test_the_same_passkey_twice_and_the_waiting_limit(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        soft = SoftAuthenticator()
        soft.enroll(registry, "lena.fischer")
        with pytest.raises(IdentityRefused, match="already waits for an identity admin"):
            soft.enroll(registry, "lena.fischer")
        for _ in range(MAX_PENDING_PASSKEYS - 1):
            SoftAuthenticator().enroll(registry, "lena.fischer")
        before = state(registry)
        with pytest.raises(IdentityRefused, match="passkeys waiting for an identity admin"):
            SoftAuthenticator().enroll(registry, "lena.fischer")
        assert state(registry) == before

    def test_an_approved_passkey_cannot_be_enrolled_again(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        soft = SoftAuthenticator()
        soft.register(registry, "lena.fischer", admin_key(registry, tmp_path / "keys"))

        with pytest.raises(IdentityRefused, match="is already registered"):
            soft.enroll(registry, "mallory")

    def test_a_revoked_passkey_is_no_longer_listed(
        self, registry: IdentityRegistry, tmp_path: Path
    ) -> None:
        admin = admin_key(registry, tmp_path / "keys")
        soft = SoftAuthenticator()
        soft.register(registry, "lena.fischer", admin)
        registry.revoke(
            soft.key_id, at=datetime.now(UTC) - timedelta(seconds=1), reason="lost", admin_key=admin
        )

        assert registry.passkeys("lena.fischer") == []
        with pytest.raises(IdentityRefused, match="is a passkey"):
            registry.rotate(
                soft.key_id,
                public_key=signing.public_key_b64(Ed25519PrivateKey.generate()),
                admin_key=admin,
            )
        assert registry.verify_log() == []


class TestSsoLinks:
    """An identity admin links an OIDC identity to one person at a time; links are logged."""

    def test_link_and_unlink(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        admin = admin_key(registry, tmp_path / "keys")

        link = registry.link_sso(
            "lena.fischer", issuer=ISSUER, subject="u-7", email="lena@x.example", admin_key=admin
        )

        assert registry.sso_person(ISSUER, "u-7") == "lena.fischer"
        assert registry.sso_person(ISSUER, "u-8") is None
        assert registry.sso_person("https://other.example", "u-7") is None
        assert registry.sso_links("lena.fischer") == [link]
        assert registry.log()[-1].action == "link_sso"
        assert registry.verify_log() == []
        assert [e.action for e in registry.sso_link_entries(ISSUER, "u-7")] == ["link_sso"]

        registry.unlink_sso("lena.fischer", issuer=ISSUER, subject="u-7", admin_key=admin)

        assert registry.sso_person(ISSUER, "u-7") is None
        assert registry.verify_log() == []
        assert [e.action for e in registry.sso_link_entries(ISSUER, "u-7")] == [
            "link_sso",
            "unlink_sso",
        ]

    def test_one_person_per_identity(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        admin = admin_key(registry, tmp_path / "keys")
        registry.link_sso("lena.fischer", issuer=ISSUER, subject="u-7", admin_key=admin)
        before = state(registry)

        with pytest.raises(IdentityRefused, match=r"already linked to lena\.fischer; unlink"):
            registry.link_sso("mallory", issuer=ISSUER, subject="u-7", admin_key=admin)
        with pytest.raises(IdentityRefused, match="is not linked to mallory"):
            registry.unlink_sso("mallory", issuer=ISSUER, subject="u-7", admin_key=admin)
        with pytest.raises(IdentityRefused, match="issuer"):
            registry.link_sso("mallory", issuer="not a url", subject="u-9", admin_key=admin)
        with pytest.raises(IdentityRefused, match="subject"):
            registry.link_sso("mallory", issuer=ISSUER, subject="a\nb", admin_key=admin)
        assert state(registry) == before

    def test_only_an_admin_links(self, registry: IdentityRegistry, tmp_path: Path) -> None:
        keys = register_people(registry, ["mallory"], tmp_path / "keys")
        before = state(registry)

        with pytest.raises(IdentityRefused, match="not an identity admin"):
            registry.link_sso("mallory", issuer=ISSUER, subject="u-1", admin_key=keys["mallory"])
        assert state(registry) == before

    def test_a_link_written_into_the_table_by_hand_is_found(
        self, registry: IdentityRegistry, url: str, tmp_path: Path
    ) -> None:
        admin = admin_key(registry, tmp_path / "keys")
        registry.link_sso("lena.fischer", issuer=ISSUER, subject="u-7", admin_key=admin)
        with tampering(url) as connection:
            connection.execute(
                sa.insert(identity_sso_links).values(
                    issuer=ISSUER,
                    subject="u-evil",
                    person="mallory",
                    email=None,
                    linked_at=datetime(2026, 1, 1, tzinfo=UTC),
                    linked_by=registry.log()[-1].by_key_id,
                    log_seq=99,
                )
            )
            connection.execute(
                sa.text("UPDATE identity_sso_links SET person = 'mallory' WHERE subject = 'u-7'")
            )

        assert registry.verify_log() == [
            f"the single sign-on link {ISSUER} u-7 names mallory, the identity log lena.fischer",
            f"the single sign-on link {ISSUER} u-evil -> mallory is not in the identity log",
        ]

    def test_an_edited_link_entry_is_found(
        self, registry: IdentityRegistry, url: str, tmp_path: Path
    ) -> None:
        admin = admin_key(registry, tmp_path / "keys")
        registry.link_sso("lena.fischer", issuer=ISSUER, subject="u-7", admin_key=admin)
        seq = registry.log()[-1].seq
        with tampering(url) as connection:
            drop_log_triggers(connection)
            edit_log_body(
                connection,
                seq,
                lambda body: dict(body, sso=dict(body["sso"], person="mallory")),
            )

        assert registry.verify_log() == [
            f"identity log entry {seq}: its hash does not match its content (the entry was edited)"
        ]

    def test_an_approved_passkey_written_by_hand_is_found(
        self, registry: IdentityRegistry, url: str, tmp_path: Path
    ) -> None:
        """A passkey row inserted into the key table without an approval is in no log entry."""
        soft = SoftAuthenticator()
        admin = admin_key(registry, tmp_path / "keys")
        record = soft.register(registry, "lena.fischer", admin)
        forged = SoftAuthenticator()
        with tampering(url) as connection:
            insert_key(
                connection,
                key_id=forged.key_id,
                principal="lena.fischer",
                principal_kind="person",
                kind="webauthn",
                public_key=forged.public_key,
                certified_by=record.certified_by,
                certificate=record.certificate,
                credential_id=forged.credential_id,
                rp_id="localhost",
                origin=ORIGIN,
            )

        assert registry.verify_log() == [
            f"key {forged.key_id} (lena.fischer) is not in the identity log"
        ]
        assert registry.key(forged.key_id) is None, "its certificate does not verify"


# --- the CLI --------------------------------------------------------------------------------------


class Cli(IdentityCli):
    """The CLI of tests/identity/test_cli.py (``run``, ``json``) over a registry with two people."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        with IdentityRegistry(self.settings.effective_registry_url) as registry:
            register_people(registry, ["lena.fischer", "mallory"], self.settings.keys_dir)

    def registry(self) -> IdentityRegistry:
        return IdentityRegistry(self.settings.effective_registry_url)

    def state(self) -> tuple[Any, ...]:
        with self.registry() as registry:
            return state(registry)


def refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


class TestCli:
    """`gatekeeper keys passkey|sso|gateway` as an identity admin uses them."""

    def test_passkey_list_approve(self, cli: Cli) -> None:
        soft = SoftAuthenticator()
        with cli.registry() as registry:
            pending = soft.enroll(registry, "lena.fischer", label="laptop")

        listed = cli.json("keys", "passkey", "list", "--pending")
        assert [e["enrollment_id"] for e in listed] == [pending.enrollment_id]
        table = cli.run("keys", "passkey", "list")
        assert pending.enrollment_id in table.stdout and "pending" in table.stdout

        approved = cli.json("keys", "passkey", "approve", pending.enrollment_id, "--as", ADMIN)

        assert approved["key_id"] == soft.key_id and approved["kind"] == "webauthn"
        assert approved["origin"] == ORIGIN
        assert cli.json("keys", "passkey", "list", "--pending") == []
        keys = cli.run("keys", "list", "--as", "lena.fischer")
        assert soft.key_id in keys.stdout and "(passkey)" in keys.stdout
        assert cli.run("identity", "verify").returncode == 0

    def test_passkey_reject(self, cli: Cli) -> None:
        with cli.registry() as registry:
            pending = SoftAuthenticator().enroll(registry, "lena.fischer")

        result = cli.run(
            "keys", "passkey", "reject", pending.enrollment_id, "--admin", ADMIN,
            "--reason", "unknown device",
        )  # fmt: skip

        assert result.returncode == 0, result.stderr
        [row] = cli.json("keys", "passkey", "list")
        assert row["state"] == "rejected" and row["reason"] == "unknown device"

    def test_a_person_cannot_approve_their_own_passkey(self, cli: Cli) -> None:
        with cli.registry() as registry:
            pending = SoftAuthenticator().enroll(registry, "mallory")
        before = cli.state()

        result = cli.run("keys", "passkey", "approve", pending.enrollment_id, "--as", "mallory")

        refused(result, "belongs to mallory, a person, not an identity admin")
        assert cli.state() == before

    def test_sso_link_list_unlink(self, cli: Cli) -> None:
        link = cli.json(
            "keys", "sso", "link", "lena.fischer", "--issuer", ISSUER, "--subject", "u-7",
            "--email", "lena@x.example", "--as", ADMIN,
        )  # fmt: skip
        assert link["person"] == "lena.fischer"
        assert [x["subject"] for x in cli.json("keys", "sso", "list")] == ["u-7"]
        log = cli.run("identity", "log")
        assert "link_sso" in log.stdout and "u-7" in log.stdout

        again = cli.run(
            "keys", "sso", "link", "mallory", "--issuer", ISSUER, "--subject", "u-7",
            "--as", ADMIN,
        )  # fmt: skip
        refused(again, "already linked to lena.fischer")

        result = cli.run(
            "keys", "sso", "unlink", "lena.fischer", "--issuer", ISSUER, "--subject", "u-7",
            "--as", ADMIN,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert cli.json("keys", "sso", "list") == []
        assert cli.run("identity", "verify").returncode == 0

    def test_gateway_register_creates_the_key_file(self, cli: Cli, tmp_path: Path) -> None:
        path = tmp_path / "console" / "gateway.pem"

        record = cli.json(
            "keys", "gateway", "register", "--name", "console", "--key-file", str(path),
            "--as", ADMIN,
        )  # fmt: skip

        assert record["principal_kind"] == "gateway" and record["principal"] == "console"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with cli.registry() as registry:
            found = registry.key(record["key_id"])
        assert found is not None and found.principal_kind is PrincipalKind.GATEWAY
        again = cli.run(
            "keys", "gateway", "register", "--name", "console", "--key-file", str(path),
            "--as", ADMIN,
        )  # fmt: skip
        refused(again, "is already registered to console")


class TestSignatureKinds:
    """A CLI key's signature and its attestation are byte for byte what they were before
    passkeys and gateways existed; a signature's kind and its proof go together."""

    BINDING = Binding(subject_id="aurora-2", first_run_id="run-1", stage="internal_review")
    REQUEST = {"decider": "sam.safety", "role": "safety", "comment": "ok"}
    WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    def test_a_key_signature_is_unchanged(self) -> None:
        key = Ed25519PrivateKey.from_private_bytes(b"\1" * 32)
        signed = sign_request(
            key,
            action="approve",
            actor="sam.safety",
            request=self.REQUEST,
            binding=self.BINDING,
            signed_at=self.WHEN,
            nonce="n" * 24,
        )

        assert list(signed["signature"]) == ["key_id", "signed_at", "nonce", "binding", "value"]
        recorded = attestation("approve", signed)
        assert recorded is not None and set(recorded) == {"statement", "signature"}
        # Pinned from the code before issue 15 (commit 8c90ccc; Ed25519 is deterministic): the
        # signed request and its audit attestation, as canonical JSON.
        assert sha256_hex(canonical_json(signed)) == (
            "77d943bb18a5760c2290777ea40cecf792af54a6b526d04d8030acf5267b517c"
        )
        assert sha256_hex(canonical_json(recorded)) == (
            "de495a0b79143e6875cfb987711360b9b1fdf13c248395585779dfdd0f1feebc"
        )
        # and the model round-trip (a workflow re-dumping the request) keeps it so.
        assert (
            RequestSignature.model_validate(signed["signature"]).model_dump(mode="json")
            == (signed["signature"])
        )

    def test_kind_and_proof_go_together(self) -> None:
        base = {
            "key_id": "webauthn:" + "0" * 32,
            "signed_at": self.WHEN.isoformat(),
            "nonce": "n" * 24,
            "binding": self.BINDING.model_dump(mode="json"),
            "value": base64.b64encode(b"\1" * 70).decode(),
        }
        proof = {"authenticator_data": "A" * 50, "client_data_json": "B" * 40}
        sso = {"issuer": ISSUER, "subject": "u-1", "auth_time": self.WHEN.isoformat()}
        for bad in (
            {"kind": "webauthn"},
            {"kind": "gateway"},
            {"webauthn": proof},
            {"sso": sso},
            {"kind": "webauthn", "sso": sso, "webauthn": proof},
            {"kind": "passkey", "webauthn": proof},
        ):
            with pytest.raises(ValidationError):
                RequestSignature.model_validate({**base, **bad})
        assert RequestSignature.model_validate({**base, "kind": "webauthn", "webauthn": proof})

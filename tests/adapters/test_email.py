"""The e-mail channel against a real local SMTP server (aiosmtpd): one message per key."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gatekeeper.adapters.email import EmailChannel, GuardedSMTPSSL, email_factory, message_id
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier
from gatekeeper.channels import ChannelConfig, SendJournal
from gatekeeper.egress import EgressGuard, EgressRefused, EgressRules
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import NotifyRequest, Recipient
from tests.adapters.builders import email_settings, notify_request
from tests.journals import Journals, journal_at, unrecord
from tests.workers.helpers import free_ports

pytestmark = pytest.mark.usefixtures("journals")

SENDER = "gatekeeper@meridian-ai.example"


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps every accepted message; refuses addresses as told."""

    messages: list[Message] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    [port] = free_ports(1)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(mailbox, port)
    controller.stop()


#: The SMTP servers listen on loopback, which the egress rules refuse unless allowed.
LOOPBACK = EgressRules.allowing(["127.0.0.1"])


def mail(port: int, **extra: Any) -> ChannelConfig:
    """Channel ``mail`` as the worker's configuration defines it: the local server at ``port``."""
    settings = email_settings("127.0.0.1", port, **extra).model_copy(update={"sender": SENDER})
    return ChannelConfig("mail", settings)


def journal(tmp_path: Path) -> SendJournal:
    return journal_at(tmp_path / "outbox.jsonl")


def notifier(
    tmp_path: Path,
    port: int,
    env: dict[str, str] | None = None,
    egress: EgressRules = LOOPBACK,
    **extra: Any,
) -> Notifier:
    """A worker's notifier whose configuration defines ``mail`` as the server at ``port``."""
    registry = ChannelRegistry.embedded(journal(tmp_path))
    registry.register("email", email_factory(journal(tmp_path), env or {}, egress=egress))
    settings = mail(port, **extra).settings
    assert settings is not None
    return Notifier(registry, configured={"mail": settings})


def request(count: int = 3) -> NotifyRequest:
    req = notify_request(0)
    req.recipients[:] = [
        Recipient(
            id=f"person-{i}", name=f"Person {i}", email=f"person{i}@example.org", channel="mail"
        )
        for i in range(count)
    ]
    return req


class TestDelivery:
    """Each delivery is one plain-text message written for people, whose Message-ID is derived
    from the delivery key so a copy can be recognised."""

    def test_one_message_per_recipient(self, tmp_path: Path, smtp: SmtpServer) -> None:
        result = notifier(tmp_path, smtp.port).notify(request())

        assert result.sent == 3
        first = smtp.mailbox.messages[0]
        key = result.deliveries[0].key
        assert first["From"] == SENDER
        assert first["To"] == "Person 0 <person0@example.org>"
        assert first["Subject"] == "Atlas 2 waits for your review"
        assert first["Message-ID"] == message_id(key, SENDER)
        assert first["Message-ID"].endswith("@meridian-ai.example>")
        assert first["X-Gatekeeper-Idempotency-Key"] == key
        assert first["X-Gatekeeper-Event"] == "gate_waiting"
        body = first.get_payload(decode=True).decode()
        assert "Internal review of atlas 2.0 is open." in body
        assert "What is needed from you: approve, reject or request changes" in body
        assert "By: 2026-07-04 12:00 UTC" in body
        assert "Where to look: `gatekeeper release status atlas-2`" in body

    def test_a_retry_sends_nothing_twice(self, tmp_path: Path, smtp: SmtpServer) -> None:
        notifier(tmp_path, smtp.port).notify(request(2))

        again = notifier(tmp_path, smtp.port).notify(request(3))

        assert [d.duplicate for d in again.deliveries] == [True, True, False]
        assert len(smtp.mailbox.messages) == 3
        assert len(set(smtp.mailbox.ids())) == 3

    def test_a_resend_after_a_lost_outcome_is_the_same_message(
        self, tmp_path: Path, smtp: SmtpServer, journals: Journals
    ) -> None:
        req = request(1)
        channel = EmailChannel(mail(smtp.port), journal(tmp_path), egress=LOOPBACK)
        key = "atlas-2:internal_review:gate_waiting:0:person-0:mail"
        channel.deliver(req.notification, req.recipients[0], key)
        channel.close()
        unrecord(journals.url, key)  # as if the worker died before recording it

        notifier(tmp_path, smtp.port).notify(req)

        first, second = smtp.mailbox.messages
        assert first["Message-ID"] == second["Message-ID"]
        assert first.as_bytes() == second.as_bytes()


class TestFailures:
    """Refusals the server calls permanent are final for that recipient only; temporary ones and
    an unreachable server are retried."""

    def test_a_recipient_without_address_fails_alone(
        self, tmp_path: Path, smtp: SmtpServer
    ) -> None:
        req = request(2)
        req.recipients.insert(1, Recipient(id="partner:acme", name="Acme", channel="mail"))

        with pytest.raises(DeliveryError, match="partner:acme has no e-mail address") as caught:
            notifier(tmp_path, smtp.port).notify(req)

        assert caught.value.retryable is False
        assert len(smtp.mailbox.messages) == 2

    @pytest.mark.parametrize(
        ("answer", "retryable"), [("550 no such user", False), ("451 try later", True)]
    )
    def test_refused_recipient(
        self, tmp_path: Path, smtp: SmtpServer, answer: str, retryable: bool
    ) -> None:
        smtp.mailbox.refuse["person0@example.org"] = answer

        with pytest.raises(DeliveryError, match="recipient refused") as caught:
            notifier(tmp_path, smtp.port).notify(request(2))

        assert caught.value.retryable is retryable
        assert len(smtp.mailbox.messages) == (0 if retryable else 1)

    def test_no_server_is_retryable(self, tmp_path: Path) -> None:
        [port] = free_ports(1)

        with pytest.raises(DeliveryError, match="could not deliver") as caught:
            notifier(tmp_path, port).notify(request(1))

        assert caught.value.retryable is True

    def test_credentials_are_never_sent_in_clear(self, tmp_path: Path, smtp: SmtpServer) -> None:
        login = {"SMTP_LOGIN": "gatekeeper:pw"}
        sending = notifier(tmp_path, smtp.port, login, secret_env="SMTP_LOGIN")

        with pytest.raises(DeliveryError, match="refusing to send credentials") as caught:
            sending.notify(request(1))

        assert caught.value.retryable is False
        assert smtp.mailbox.messages == []

    def test_missing_credentials_are_final_and_name_no_variable(
        self, tmp_path: Path, smtp: SmtpServer
    ) -> None:
        sending = notifier(tmp_path, smtp.port, {}, secret_env="SMTP_LOGIN")

        with pytest.raises(DeliveryError, match="'mail' has no credentials") as caught:
            sending.notify(request(1))

        assert caught.value.retryable is False
        assert "SMTP_LOGIN" not in str(caught.value)
        assert smtp.mailbox.messages == []

    def test_a_loopback_server_is_refused_unless_allowed(
        self, tmp_path: Path, smtp: SmtpServer
    ) -> None:
        refusing = notifier(tmp_path, smtp.port, egress=EgressRules())

        with pytest.raises(DeliveryError, match="'mail' refused") as caught:
            refusing.notify(request(1))

        assert caught.value.retryable is False
        assert "a loopback address" in str(caught.value) and "127.0.0.1" not in str(caught.value)
        assert smtp.mailbox.messages == []


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TestStartTls:
    """When the server offers STARTTLS the channel upgrades (verifying the certificate) before it
    logs in with the credentials named by ``secret_env``."""

    def test_upgrades_then_logs_in(self, tmp_path: Path) -> None:
        cert, key = self_signed(tmp_path)
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        logins: list[tuple[bytes, bytes]] = []

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            assert isinstance(data, LoginPassword)
            logins.append((data.login, data.password))
            return AuthResult(success=data.password == b"pa:ss")

        mailbox = Mailbox()
        [port] = free_ports(1)
        controller = Controller(
            mailbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=server_tls,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
        )
        controller.start()
        try:
            config = mail(port, secret_env="SMTP_LOGIN")
            channel = EmailChannel(
                config,
                journal(tmp_path),
                credentials=("gatekeeper", "pa:ss"),
                tls_context=ssl.create_default_context(cafile=str(cert)),
                egress=LOOPBACK,
            )
            req = request(1)
            assert channel.deliver(req.notification, req.recipients[0], "k-1")
            channel.close()
        finally:
            controller.stop()

        assert logins == [(b"gatekeeper", b"pa:ss")]
        assert [m["X-Gatekeeper-Idempotency-Key"] for m in mailbox.messages] == ["k-1"]

    def test_user_and_password_come_from_the_variable(self, tmp_path: Path) -> None:
        opened = email_factory(journal(tmp_path), {"SMTP_LOGIN": "ops:pa:ss", "PW_ONLY": "pw"})

        with_user = opened(mail(25, secret_env="SMTP_LOGIN"))
        password_only = opened(mail(25, secret_env="PW_ONLY"))

        assert with_user._credentials == ("ops", "pa:ss")
        assert password_only._credentials == (SENDER, "pw")


class TestImplicitTls:
    """Port 465 style (TLS from the first byte) connects through the egress guard too: to a
    checked address, verifying the certificate; a refused destination is never connected."""

    def test_connects_through_the_guard(self, tmp_path: Path) -> None:
        cert, key = self_signed(tmp_path)
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(cert, key)
        [port] = free_ports(1)
        controller = Controller(Mailbox(), hostname="127.0.0.1", port=port, ssl_context=server_tls)
        controller.start()
        client_tls = ssl.create_default_context(cafile=str(cert))
        try:
            with pytest.raises(EgressRefused, match="a loopback address"):
                GuardedSMTPSSL(EgressGuard(), "127.0.0.1", port, timeout=5, context=client_tls)
            smtp = GuardedSMTPSSL(
                EgressGuard(LOOPBACK), "127.0.0.1", port, timeout=5, context=client_tls
            )
            code, _ = smtp.ehlo()
            smtp.quit()
        finally:
            controller.stop()

        assert code == 250

"""E-mail channel: one plain-text message per delivery over SMTP, one connection per fan-out.

The ``Message-ID`` is derived from the delivery key, and the key itself travels in
``X-Gatekeeper-Idempotency-Key``, so a mail system (or a person's filter) can drop the copy a
retried send may produce. Port 465 means TLS from the first byte; on any other port STARTTLS is
used whenever the server offers it, and is required before credentials are sent.

The channel is defined in the worker's configuration (``[channels.<name>]``, ``type = "email"``,
:mod:`gatekeeper.channels.email`).
Credentials come from the worker's environment variable its ``secret_env`` names:
``user:password``, or just a password for the user named by ``sender``. The SMTP host is checked
against the ``[egress]`` rules at every connection (:mod:`gatekeeper.egress`): resolved once, every
address checked, and the connection made to a checked address. Errors name the channel, never its
host or credentials.
"""

from __future__ import annotations

import email.policy
import hashlib
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import cast

from gatekeeper.channels.base import ChannelConfig, ChannelFactory, SendJournal, settings_of
from gatekeeper.channels.email import EmailSettings
from gatekeeper.channels.messages import DeliveryRecords, message_text
from gatekeeper.egress import EgressGuard, EgressRefused, EgressRules
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import Notification, Recipient

IDEMPOTENCY_HEADER = "X-Gatekeeper-Idempotency-Key"
#: Seconds per SMTP operation (connect, each command); a stuck server fails the delivery.
SMTP_TIMEOUT = 10.0
_IMPLICIT_TLS_PORT = 465
#: SMTP line endings; headers are not folded below RFC 5322's hard limit, so a long key header
#: reaches the receiver as written.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def message_id(key: str, sender: str) -> str:
    """A stable ``Message-ID`` for delivery ``key``: a resend is recognisably the same message."""
    domain = sender.rpartition("@")[2] or "gatekeeper.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def compose(
    notification: Notification, recipient: Recipient, key: str, sender: str
) -> EmailMessage:
    """The message for one delivery. Built only from the notification, so it is the same bytes
    whichever attempt sends it."""
    if not recipient.email:
        raise DeliveryError(f"{recipient.id} has no e-mail address", retryable=False)
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = formataddr((recipient.name, recipient.email))
    message["Subject"] = notification.subject
    message["Date"] = format_datetime(notification.occurred_at)
    message["Message-ID"] = message_id(key, sender)
    message[IDEMPOTENCY_HEADER] = key
    message["X-Gatekeeper-Release"] = notification.release_id
    message["X-Gatekeeper-Event"] = notification.event.value
    message.set_content(message_text(notification, recipient))
    return message


class _GuardedSocket(smtplib.SMTP):
    """Connects through an :class:`EgressGuard`: to an address checked for the host, while TLS
    still verifies the certificate against the host name (smtplib's ``_host``)."""

    guard: EgressGuard

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        source = cast("tuple[str, int] | None", self.source_address)
        return self.guard.connect(host, port, timeout, source)


class GuardedSMTP(_GuardedSocket):
    """SMTP (STARTTLS when offered) to an egress-checked address; connects when made."""

    def __init__(self, guard: EgressGuard, host: str, port: int, *, timeout: float) -> None:
        self.guard = guard
        super().__init__(host, port, timeout=timeout)


class GuardedSMTPSSL(smtplib.SMTP_SSL, _GuardedSocket):
    """SMTP over TLS from the first byte (port 465) to an egress-checked address."""

    def __init__(
        self,
        guard: EgressGuard,
        host: str,
        port: int,
        *,
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self.guard = guard
        super().__init__(host, port, timeout=timeout, context=context)


def _open_smtp(guard: EgressGuard, host: str, port: int, context: ssl.SSLContext) -> smtplib.SMTP:
    # smtplib connects in the constructor (and closes the socket itself if that fails).
    if port == _IMPLICIT_TLS_PORT:
        return GuardedSMTPSSL(guard, host, port, timeout=SMTP_TIMEOUT, context=context)
    return GuardedSMTP(guard, host, port, timeout=SMTP_TIMEOUT)


class EmailChannel:
    """Sends deliveries through one SMTP server, connecting on the first send.

    Args:
        config: the channel; its settings carry ``smtp_host`` and ``sender`` (port defaults
            to 25).
        journal: where delivered keys and send claims are recorded.
        credentials: ``(user, password)`` to log in with, or None.
        tls_context: for STARTTLS and port 465 (default: the system's verified context).
        egress: the worker's egress rules (default: public addresses only).
    """

    def __init__(
        self,
        config: ChannelConfig,
        journal: SendJournal,
        *,
        credentials: tuple[str, str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        egress: EgressRules | None = None,
    ) -> None:
        settings = settings_of(config, EmailSettings)
        self._config = config
        self._host = settings.smtp_host
        self._port = settings.smtp_port or 25
        self._sender = settings.sender
        self._journal = journal
        self._credentials = credentials
        self._tls = tls_context
        self._guard = EgressGuard(egress or EgressRules())
        self._smtp: smtplib.SMTP | None = None
        self._records = DeliveryRecords(config)

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        if self._journal.already_delivered(key):
            return False
        message = compose(notification, recipient, key, self._sender)
        self._journal.claim(key, self._config)
        try:
            self._connection().send_message(message)
        except EgressRefused as err:
            raise DeliveryError(
                f"e-mail channel {self._config.id!r} refused: {err}", retryable=False
            ) from err
        except smtplib.SMTPException as err:
            self._drop_if_disconnected(err)
            raise self._error(err, key) from err
        except OSError as err:
            self._drop()
            # The text of a socket or TLS error may name the host: the kind is what is reported.
            raise DeliveryError(
                f"e-mail channel {self._config.id} could not deliver {key}: {_os_error(err)}"
            ) from err
        self._journal.record(key, self._records.record(notification, recipient))
        return True

    def close(self) -> None:
        try:
            self._journal.sync()
        finally:
            if self._smtp is not None:
                try:
                    self._smtp.quit()
                except (smtplib.SMTPException, OSError):
                    self._smtp.close()
                self._smtp = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        context = self._tls or ssl.create_default_context()
        smtp = _open_smtp(self._guard, self._host, self._port, context)
        secure = self._port == _IMPLICIT_TLS_PORT
        try:
            smtp.ehlo()
            if not secure and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
                secure = True
            if self._credentials is not None:
                if not secure:
                    raise DeliveryError(
                        f"e-mail channel {self._config.id}: the server offers no TLS; "
                        "refusing to send credentials in clear text",
                        retryable=False,
                    )
                smtp.login(*self._credentials)
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _drop_if_disconnected(self, err: smtplib.SMTPException) -> None:
        if isinstance(err, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
            self._drop()

    def _error(self, err: smtplib.SMTPException, key: str) -> DeliveryError:
        where = f"e-mail channel {self._config.id} could not deliver {key}"
        if isinstance(err, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in err.recipients.values()]
            retryable = bool(codes) and all(400 <= code < 500 for code in codes)
            return DeliveryError(f"{where}: recipient refused ({codes})", retryable=retryable)
        if isinstance(err, smtplib.SMTPAuthenticationError):
            # The server's answer may repeat the user name, which is half of the secret.
            return DeliveryError(
                f"{where}: the server refused the credentials ({err.smtp_code})", retryable=False
            )
        if isinstance(err, smtplib.SMTPNotSupportedError):
            return DeliveryError(f"{where}: {err}", retryable=False)
        if isinstance(err, smtplib.SMTPResponseException):
            raw = err.smtp_error
            detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            return DeliveryError(
                f"{where}: {err.smtp_code} {detail}".strip(), retryable=400 <= err.smtp_code < 500
            )
        return DeliveryError(f"{where}: {err}")


def _os_error(err: OSError) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"{type(err).__name__}: {err.verify_message}"
    if err.errno is not None and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    return type(err).__name__


def email_factory(
    journal: SendJournal,
    env: Mapping[str, str],
    *,
    egress: EgressRules | None = None,
    tls_context: ssl.SSLContext | None = None,
) -> ChannelFactory:
    """A factory for :class:`EmailChannel`, reading each channel's credentials from ``env``.

    A channel whose ``secret_env`` variable is unset or empty cannot be opened (not retried; the
    error names the channel only).
    """

    def open_email(config: ChannelConfig) -> EmailChannel:
        credentials = None
        settings = settings_of(config, EmailSettings)
        if settings.secret_env:
            secret = env.get(settings.secret_env, "")
            if not secret:
                raise DeliveryError(
                    f"e-mail channel {config.id!r} has no credentials on this worker (the "
                    "variable its configuration names is not set)",
                    retryable=False,
                )
            user, colon, password = secret.partition(":")
            credentials = (user, password) if colon else (settings.sender, secret)
        return EmailChannel(
            config, journal, credentials=credentials, tls_context=tls_context, egress=egress
        )

    return open_email

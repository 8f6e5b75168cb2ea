"""Webhook channel: POST each delivery as JSON, signed with HMAC-SHA256, keyed for deduplication.

Every request carries:

- ``Idempotency-Key``: the delivery key (release, event, audit sequence, recipient, channel);
  a receiver that remembers keys it has processed sees each message once.
- ``X-Gatekeeper-Timestamp``: Unix seconds when the request was signed.
- ``X-Gatekeeper-Signature``: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.
- ``X-Gatekeeper-Redelivery: 1`` when an earlier attempt may already have delivered it.

A 2xx answer is a delivery. 408, 429, 5xx, time-outs and connection errors may pass, so they are
retryable (Temporal's retry policy spaces the attempts and caps them); any other answer is final,
redirects included (they are never followed). Receivers check requests with
:func:`verify_signature`.

Where a webhook may go is limited by the worker's ``[egress]`` rules (:mod:`gatekeeper.egress`):
every connection the HTTP client opens resolves the host once, checks every address, and connects
to a checked address (:func:`webhook_client`). Environment proxies and ``.netrc`` are not used.
Errors name the channel, never its URL or secret. The channel's configuration (``url``,
``secret_env``) and its validation are :mod:`gatekeeper.channels.webhook`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import httpcore
import httpx
import structlog

from gatekeeper.channels.base import ChannelConfig, ChannelFactory, SendJournal, settings_of
from gatekeeper.channels.messages import DeliveryRecords, notification_document
from gatekeeper.channels.webhook import WebhookSettings
from gatekeeper.egress import EgressGuard, EgressRefused, EgressRules
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import Notification, Recipient

IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-Gatekeeper-Timestamp"
SIGNATURE_HEADER = "X-Gatekeeper-Signature"
REDELIVERY_HEADER = "X-Gatekeeper-Redelivery"
#: How old a signed request a receiver accepts by default (replay protection).
DEFAULT_TOLERANCE_SECONDS = 300
#: Per request; well under the notify activity's timeout so one slow receiver cannot stall it.
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_RETRYABLE_STATUS = frozenset({408, 429})
#: httpx's own defaults.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

_log = structlog.get_logger(__name__)

# httpx logs every request's URL at INFO, httpcore the address of every connection at DEBUG:
# where a channel points is the worker's configuration and stays out of its logs. (Children such
# as ``httpcore.connection`` take their level from these.) Webhook logs are this module's own.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Gatekeeper-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether a received webhook is authentic: for receivers, before trusting the body.

    Args:
        secret: the shared secret (the value of the variable the channel's ``secret_env`` names
            in the worker's configuration).
        header: the request's ``X-Gatekeeper-Signature`` header.
        body: the raw request body, exactly as received (not re-serialised JSON).
        tolerance: the oldest (and furthest in the future) signing time accepted, in seconds.
        now: the receiver's clock, Unix seconds (default: ``time.time()``).

    Returns:
        True if the signature matches and its timestamp is within ``tolerance``.
    """
    parts: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        parts.setdefault(name, value)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, f"t={timestamp},v1={parts.get('v1', '')}")


def payload(notification: Notification, recipient: Recipient, key: str, channel: str) -> bytes:
    """The JSON body of one delivery: the notification as data, plus a text for people."""
    document = notification_document(notification, recipient, key, channel)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the egress rules allow, resolving each host once
    and connecting to the very addresses that were checked (no second lookup to rebind)."""

    def __init__(self, guard: EgressGuard) -> None:
        self._guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._guard.resolve(host, port)  # EgressRefused goes to the caller
        except OSError as err:  # the name did not resolve: may pass
            raise httpcore.ConnectError(f"{type(err).__name__}: could not resolve") from err
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    str(address), port, timeout, local_address, socket_options or []
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                error = err
        assert error is not None  # resolve() never returns no address
        raise error


class GuardedClient(httpx.Client):
    """An HTTP client whose every connection passes the egress rules; see :func:`webhook_client`."""


def webhook_client(
    egress: EgressRules | EgressGuard | None = None, *, timeout: httpx.Timeout = REQUEST_TIMEOUT
) -> GuardedClient:
    """The HTTP client webhooks are sent with: egress-checked connections, no redirects, no
    environment proxies or ``.netrc`` credentials. Thread-safe; close it when done.

    Args:
        egress: the worker's egress rules (``Settings.config.egress.rules``); default: nothing
            beyond public addresses.
    """
    guard = egress if isinstance(egress, EgressGuard) else EgressGuard(egress or EgressRules())
    # One TLS context (loading the CA bundle takes about 45 ms), given to the transport too so
    # that it does not load one of its own only for the pool below to replace it.
    tls = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=tls, trust_env=False)
    # httpx has no public hook for the connection backend; its transport keeps an httpcore pool,
    # which has one. Replaced before the first request, so every connection goes through it.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=tls,
        network_backend=_GuardedBackend(guard),
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry,
    )
    return GuardedClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )


class WebhookChannel:
    """POSTs deliveries to one URL with one shared HTTP connection for the whole fan-out.

    Args:
        config: the channel; its settings carry the ``url``.
        journal: where delivered keys and send claims are recorded.
        secret: the HMAC key.
        client: an egress-checked HTTP client to use (closed by the caller); one is made (and
            closed) if omitted, allowing public addresses only.
        clock: Unix seconds, for the signature's timestamp.
    """

    def __init__(
        self,
        config: ChannelConfig,
        journal: SendJournal,
        secret: bytes,
        *,
        client: GuardedClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._url = settings_of(config, WebhookSettings).url
        self._journal = journal
        self._secret = secret
        self._owns_client = client is None
        self._client = client or webhook_client()
        self._clock = clock
        self._records = DeliveryRecords(config)

    def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
        if self._journal.already_delivered(key):
            return False
        first = self._journal.claim(key, self._config)
        body = payload(notification, recipient, key, self._config.id)
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: key,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
        }
        if not first:
            headers[REDELIVERY_HEADER] = "1"
            _log.warning("webhook.redelivery", key=key, channel=self._config.id)
        where = f"webhook channel {self._config.id!r}"
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except EgressRefused as err:
            raise DeliveryError(f"{where} refused: {err}", retryable=False) from err
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            raise DeliveryError(f"{where} has an unusable url", retryable=False) from err
        except httpx.HTTPError as err:
            # The exception's text may name the URL or host: the type is what is reported.
            raise DeliveryError(f"{where} could not deliver {key}: {type(err).__name__}") from err
        code = response.status_code
        if 200 <= code < 300:
            self._journal.record(key, self._records.record(notification, recipient, status=code))
            return True
        raise DeliveryError(
            f"{where} answered HTTP {code} for {key}",
            retryable=code in _RETRYABLE_STATUS or code >= 500,
        )

    def close(self) -> None:
        try:
            self._journal.sync()
        finally:
            if self._owns_client:
                self._client.close()


def webhook_factory(
    journal: SendJournal,
    env: Mapping[str, str],
    *,
    client: GuardedClient | None = None,
    egress: EgressRules | None = None,
) -> ChannelFactory:
    """A factory for :class:`WebhookChannel`, reading each channel's secret from ``env``.

    Webhooks are always signed: a channel whose ``secret_env`` variable is unset or empty cannot
    be opened (a configuration error, so not retried; the error names the channel only). Every
    channel the factory opens shares one HTTP client (``client``, or one made on first use with
    ``egress``), so connections and TLS set-up are reused across notifications; httpx clients are
    thread-safe.
    """
    shared: list[GuardedClient] = [client] if client is not None else []
    lock = threading.Lock()

    def http() -> GuardedClient:
        with lock:
            if not shared:
                shared.append(webhook_client(egress))
            return shared[0]

    def open_webhook(config: ChannelConfig) -> WebhookChannel:
        secret = env.get(settings_of(config, WebhookSettings).secret_env, "")
        if not secret:
            raise DeliveryError(
                f"webhook channel {config.id!r} has no secret on this worker (the variable its "
                "configuration names is not set); webhooks are always signed",
                retryable=False,
            )
        return WebhookChannel(config, journal, secret.encode("utf-8"), client=http())

    return open_webhook

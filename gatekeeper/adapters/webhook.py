"""Webhook channel: POST each delivery as JSON, signed with HMAC-SHA256, keyed for deduplication.

Every request carries:

- ``Idempotency-Key``: the delivery key (release, event, audit sequence, recipient, channel);
  a receiver that remembers keys it has processed sees each message once.
- ``X-Gatekeeper-Timestamp``: Unix seconds when the request was signed.
- ``X-Gatekeeper-Signature``: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``.
- ``X-Gatekeeper-Redelivery: 1`` when an earlier attempt may already have delivered it.

A 2xx answer is a delivery. 408, 429, 5xx, time-outs and connection errors may pass, so they are
retryable (Temporal's retry policy spaces the attempts and caps them); any other answer is final.
Receivers check requests with :func:`verify_signature`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from gatekeeper.adapters.notifier import (
    ChannelFactory,
    DeliveryRecords,
    SendJournal,
    message_text,
)
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import Notification, Recipient
from gatekeeper.models.policy import ChannelConfig

IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-Gatekeeper-Timestamp"
SIGNATURE_HEADER = "X-Gatekeeper-Signature"
REDELIVERY_HEADER = "X-Gatekeeper-Redelivery"
#: How old a signed request a receiver accepts by default (replay protection).
DEFAULT_TOLERANCE_SECONDS = 300
#: Per request; well under the notify activity's timeout so one slow receiver cannot stall it.
REQUEST_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_RETRYABLE_STATUS = frozenset({408, 429})

_log = structlog.get_logger(__name__)


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
        secret: the shared secret (the value of the variable the policy's ``secret_env`` names).
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
    document: dict[str, Any] = {
        "type": "gatekeeper.notification",
        "idempotency_key": key,
        "channel": channel,
        "recipient": recipient.model_dump(mode="json"),
        "notification": notification.model_dump(mode="json"),
        "text": message_text(notification, recipient),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookChannel:
    """POSTs deliveries to one URL with one shared HTTP connection for the whole fan-out.

    Args:
        config: the channel; ``url`` is required.
        journal: where delivered keys and send claims are recorded.
        secret: the HMAC key.
        client: an HTTP client to use (closed by the caller); one is made (and closed) if omitted.
        clock: Unix seconds, for the signature's timestamp.
    """

    def __init__(
        self,
        config: ChannelConfig,
        journal: SendJournal,
        secret: bytes,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not config.url:
            raise DeliveryError(f"webhook channel {config.id!r} has no url", retryable=False)
        self._config = config
        self._url = config.url
        self._journal = journal
        self._secret = secret
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=REQUEST_TIMEOUT)
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
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as err:
            raise DeliveryError(
                f"webhook channel {self._config.id!r} has an unusable url: {err}", retryable=False
            ) from err
        except httpx.HTTPError as err:
            raise DeliveryError(
                f"webhook {self._config.id} could not deliver {key}: {type(err).__name__}: {err}"
            ) from err
        code = response.status_code
        if 200 <= code < 300:
            self._journal.record(key, self._records.record(notification, recipient, status=code))
            return True
        raise DeliveryError(
            f"webhook {self._config.id} answered HTTP {code} for {key}",
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
    client: httpx.Client | None = None,
) -> ChannelFactory:
    """A factory for :class:`WebhookChannel`, reading each channel's secret from ``env``.

    Webhooks are always signed: a channel without ``secret_env``, or whose variable is unset or
    empty, cannot be opened (a configuration error, so not retried). Every channel the factory
    opens shares one HTTP client (``client``, or one made on first use), so connections and TLS
    set-up are reused across notifications; httpx clients are thread-safe.
    """
    shared: list[httpx.Client] = [client] if client is not None else []
    lock = threading.Lock()

    def http() -> httpx.Client:
        with lock:
            if not shared:
                shared.append(httpx.Client(timeout=REQUEST_TIMEOUT))
            return shared[0]

    def open_webhook(config: ChannelConfig) -> WebhookChannel:
        if not config.secret_env:
            raise DeliveryError(
                f"webhook channel {config.id!r} has no secret_env; webhooks are always signed",
                retryable=False,
            )
        secret = env.get(config.secret_env, "")
        if not secret:
            raise DeliveryError(
                f"webhook channel {config.id!r}: variable {config.secret_env} is not set",
                retryable=False,
            )
        return WebhookChannel(config, journal, secret.encode("utf-8"), client=http())

    return open_webhook

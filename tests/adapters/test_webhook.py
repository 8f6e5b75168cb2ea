"""The webhook channel against a real local HTTP server: signed, keyed, retried only when it helps."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gatekeeper.adapters.notifier import ChannelRegistry, Notifier
from gatekeeper.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    REDELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
    webhook_factory,
)
from gatekeeper.channels import ChannelConfig
from gatekeeper.egress import EgressRules
from gatekeeper.errors import DeliveryError
from gatekeeper.models.io import NotifyRequest
from tests.adapters.builders import notify_request, webhook_settings
from tests.journals import journal_at
from tests.workers.helpers import free_ports

pytestmark = pytest.mark.usefixtures("journals")

SECRET = "s3cret-for-tests"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str:
        return self.headers[IDEMPOTENCY_HEADER]

    def json(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records every POST and answers as told.

    ``answers`` are status codes used in order (then 200); ``delay`` slows every answer, so a
    fan-out can be caught half-way; a redirect points at ``location``. ``deduplicated`` is what a receiver that honours
    ``Idempotency-Key`` processes.
    """

    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    location: str | None = None
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/gatekeeper"

    def keys(self) -> list[str]:
        with self.lock:
            return [r.key for r in self.received]

    def deduplicated(self) -> dict[str, Received]:
        with self.lock:
            seen: dict[str, Received] = {}
            for item in self.received:
                seen.setdefault(item.key, item)
            return seen

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                    code = receiver.answers.pop(0) if receiver.answers else 200
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(code)
                if receiver.location and 300 <= code < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


#: The receivers listen on loopback, which the egress rules refuse unless the worker allows it.
LOOPBACK_ALLOWED = ("127.0.0.1",)


def notifier(
    tmp_path: Path,
    url: str,
    env: dict[str, str] | None = None,
    allow: tuple[str, ...] = LOOPBACK_ALLOWED,
) -> Notifier:
    """A worker's notifier whose configuration defines channel ``hook`` as a webhook to ``url``."""
    journal = journal_at(tmp_path / "outbox.jsonl")
    registry = ChannelRegistry.embedded(journal)
    secrets = {"HOOK_SECRET": SECRET} if env is None else env
    registry.register(
        "webhook", webhook_factory(journal, secrets, egress=EgressRules.allowing(allow))
    )
    return Notifier(registry, configured={"hook": webhook_settings(url)})


def request(count: int = 3, **kw: str) -> NotifyRequest:
    return notify_request(count, channel="hook", **kw)


class TestSignedDelivery:
    """Each delivery is one POST of JSON with its key, a timestamp and an HMAC signature that the
    receiver's helper accepts, and that nothing else passes."""

    def test_one_signed_post_per_recipient(self, tmp_path: Path, receiver: WebhookReceiver) -> None:
        result = notifier(tmp_path, receiver.url).notify(request())

        assert result.sent == 3
        assert receiver.keys() == [d.key for d in result.deliveries]
        first = receiver.received[0]
        assert first.headers["Content-Type"] == "application/json"
        assert REDELIVERY_HEADER not in first.headers
        assert verify_signature(SECRET.encode(), first.headers[SIGNATURE_HEADER], first.body)
        assert first.headers[SIGNATURE_HEADER].startswith(
            f"t={first.headers[TIMESTAMP_HEADER]},v1="
        )
        document = first.json()
        assert document["idempotency_key"] == first.key
        assert document["recipient"] == {
            "id": "person-0",
            "name": "Person 0",
            "email": None,
            "channel": "hook",
        }
        assert document["notification"]["event"] == "gate_waiting"  # type: ignore[index]
        text = str(document["text"])
        assert "What is needed from you: approve, reject or request changes" in text
        assert "By: 2026-07-04 12:00 UTC" in text
        assert "gatekeeper release status atlas-2" in text

    def test_forged_tampered_or_stale_requests_fail_verification(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        notifier(tmp_path, receiver.url).notify(request(1))
        [got] = receiver.received
        header, body = got.headers[SIGNATURE_HEADER], got.body
        signed_at = int(got.headers[TIMESTAMP_HEADER])

        assert verify_signature(SECRET.encode(), header, body)
        assert not verify_signature(b"another secret", header, body)
        assert not verify_signature(SECRET.encode(), header, body.replace(b"person-0", b"person-9"))
        assert not verify_signature(SECRET.encode(), header, body, now=signed_at + 301)
        assert not verify_signature(SECRET.encode(), "v1=" + header.split("v1=")[1], body)
        assert not verify_signature(SECRET.encode(), "garbage", body)


class TestOncePerKey:
    """The sender records a key as sent once the receiver accepted it, and never sends it again;
    a send whose outcome was lost is repeated with the same key, marked as a redelivery."""

    def test_a_retry_sends_nothing_twice(self, tmp_path: Path, receiver: WebhookReceiver) -> None:
        notifier(tmp_path, receiver.url).notify(request(2))

        again = notifier(tmp_path, receiver.url).notify(request(3))  # another worker, one more

        assert [d.duplicate for d in again.deliveries] == [True, True, False]
        assert len(receiver.received) == 3
        lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
        assert [(x["channel_type"], x["status"]) for x in lines] == [("webhook", 200)] * 3

    def test_a_send_interrupted_before_it_was_recorded_is_redelivered_with_the_same_key(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        interrupted = "atlas-2:internal_review:gate_waiting:0:person-1:hook"
        hook = ChannelConfig("hook", webhook_settings(receiver.url))
        journal_at(tmp_path / "outbox.jsonl").claim(interrupted, hook)  # a try that died

        notifier(tmp_path, receiver.url).notify(request(2))

        marked = {r.key: r.headers.get(REDELIVERY_HEADER) for r in receiver.received}
        assert marked == {
            "atlas-2:internal_review:gate_waiting:0:person-0:hook": None,
            interrupted: "1",
        }


class TestFailures:
    """Answers that may pass (408, 429, 5xx, no connection) are retryable and pause the channel
    for the rest of the attempt; any other answer is final for that recipient only."""

    @pytest.mark.parametrize("code", [408, 429, 500, 503])
    def test_transient_answers_are_retried_and_the_rest_waits(
        self, tmp_path: Path, receiver: WebhookReceiver, code: int
    ) -> None:
        receiver.answers = [code]

        with pytest.raises(DeliveryError, match=f"HTTP {code}") as caught:
            notifier(tmp_path, receiver.url).notify(request(3))
        retried = notifier(tmp_path, receiver.url).notify(request(3))

        assert caught.value.retryable is True
        assert "2 deferred to the next attempt" in str(caught.value)
        assert retried.sent == 3
        assert Counter(receiver.keys()) == Counter(
            {d.key: 2 if i == 0 else 1 for i, d in enumerate(retried.deliveries)}
        )

    @pytest.mark.parametrize("code", [400, 401, 404, 410, 422])
    def test_other_client_errors_are_final_and_do_not_stop_the_others(
        self, tmp_path: Path, receiver: WebhookReceiver, code: int
    ) -> None:
        receiver.answers = [200, code]

        with pytest.raises(DeliveryError) as caught:
            notifier(tmp_path, receiver.url).notify(request(3))

        assert caught.value.retryable is False
        message = str(caught.value)
        assert "1 of 3 deliveries of atlas-2:internal_review:gate_waiting:0 failed" in message
        assert "(person-1 on hook" in message
        assert f"HTTP {code}" in str(caught.value)
        assert "2 delivered now" in str(caught.value)
        assert len(receiver.received) == 3

    def test_no_server_is_retryable(self, tmp_path: Path) -> None:
        [port] = free_ports(1)

        with pytest.raises(DeliveryError, match="ConnectError") as caught:
            notifier(tmp_path, f"http://127.0.0.1:{port}/hook").notify(request(2))

        assert caught.value.retryable is True

    @pytest.mark.parametrize("env", [{}, {"HOOK_SECRET": ""}, {"OTHER": SECRET}])
    def test_a_channel_without_its_secret_is_final_and_names_no_variable(
        self, tmp_path: Path, receiver: WebhookReceiver, env: dict[str, str]
    ) -> None:
        with pytest.raises(DeliveryError, match="'hook' has no secret") as caught:
            notifier(tmp_path, receiver.url, env).notify(request(1))

        assert caught.value.retryable is False
        assert "HOOK_SECRET" not in str(caught.value)
        assert receiver.received == []

    @pytest.mark.parametrize("code", [301, 302, 307, 308])
    def test_redirects_are_final_and_never_followed(
        self, tmp_path: Path, receiver: WebhookReceiver, code: int
    ) -> None:
        receiver.answers = [code]
        receiver.location = "http://169.254.169.254/latest/meta-data"

        with pytest.raises(DeliveryError, match=f"HTTP {code}") as caught:
            notifier(tmp_path, receiver.url).notify(request(1))

        assert caught.value.retryable is False
        assert len(receiver.received) == 1


class TestEgress:
    """Every connection a webhook opens passes the worker's egress rules: a loopback receiver is
    refused (before anything is sent, with an error naming the channel and the rule but not the
    destination) unless ``[egress] allow_hosts`` lists it."""

    def test_a_loopback_destination_is_refused_unless_allowed(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        with pytest.raises(DeliveryError, match="'hook' refused") as caught:
            notifier(tmp_path, receiver.url, allow=()).notify(request(2))

        assert caught.value.retryable is False
        assert "a loopback address" in str(caught.value)
        assert "127.0.0.1" not in str(caught.value) and receiver.url not in str(caught.value)
        assert receiver.received == []

        assert notifier(tmp_path, receiver.url).notify(request(2)).sent == 2

    def test_an_allowed_range_allows_the_addresses_in_it(
        self, tmp_path: Path, receiver: WebhookReceiver
    ) -> None:
        result = notifier(tmp_path, receiver.url, allow=("127.0.0.0/8",)).notify(request(1))

        assert result.sent == 1 and len(receiver.received) == 1

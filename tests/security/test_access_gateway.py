"""Attacks on the gateway's enforcement point: Debian's nginx with the shipped configuration
(``deploy/nginx/``) asking the real access service about every model request.

A client may send any header, query or path; only the gateway's own authentication says who
asks and only the path says which model. Whatever cannot be decided is refused, and nothing
refused reaches the model. The decisions themselves (and the service's own caller checks) are
tested in tests/access_service; these are the gateway's half.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.registry.models import PublicLaunch
from gatekeeper.models import Surface
from gatekeeper.settings import Settings
from tests.gateway.harness import (
    GATEWAY_TOKEN,
    Gateway,
    GatewayClient,
    bearer,
    free_port,
    nginx_config,
    running_gateway,
    running_nginx,
)
from tests.helpers import PARTNERS
from tests.orders.conftest import PEOPLE

EVERYONE = [p.id for p in PEOPLE]
#: Public since its launch: every registered person may use it.
OPEN = "aurora"
#: Never released: nobody may.
CLOSED = "borealis"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("access-gateway")
    registry = AccessRegistry(Settings(data_dir=directory / "data").effective_registry_url)
    for partner in PARTNERS:
        registry.add_partner(partner)
    for person in PEOPLE:
        registry.add_person(person)
    registry.record_public_launch(
        PublicLaunch(
            release_id=f"{OPEN}-1",
            model_name=OPEN,
            model_version="1.0.0",
            surface=Surface.API,
            launch_id="l-1",
            published_at=datetime.now(UTC),
        )
    )
    registry.close()
    with running_gateway(directory / "stack", directory / "data", EVERYONE) as running:
        yield running


def reached(gateway: Gateway, since: int) -> list[dict[str, str | None]]:
    return gateway.model.seen[since:]


class TestTheClientCannotChooseTheQuestion:
    """Headers and query parameters a client adds never change who or what is asked about."""

    SPOOFS = {
        "X-Gatekeeper-Person": "alice",
        "X-Gatekeeper-Model": OPEN,
        "X-Gatekeeper-Version": "1.0.0",
        "X-Gatekeeper-Surface": "console",
        "X-Gatekeeper-Gateway-Token": "forged",
    }

    def test_spoofed_headers_and_query_are_ignored(self, gateway: Gateway) -> None:
        mark = len(gateway.model.seen)
        for query in ("", f"?person=alice&model={OPEN}&surface=console"):
            answer = gateway.client.request(
                f"/v1/models/{CLOSED}/generate{query}", person="fred", headers=self.SPOOFS
            )
            assert (answer.status, answer.rule) == (403, "no_grant"), answer
        assert reached(gateway, mark) == []
        # The edge log says what was decided, and about whom: fred, for the path's model.
        denies = [
            line
            for line in gateway.service.edge_log()
            if line["event"] == "access_decision" and line["request_id"] == answer.request_id
        ]
        assert [(d["person"], d["model"], d["surface"]) for d in denies] == [
            ("fred", CLOSED, "api")
        ]

    def test_the_model_sees_the_authenticated_person_not_the_claimed_one(
        self, gateway: Gateway
    ) -> None:
        mark = len(gateway.model.seen)
        answer = gateway.client.request(
            f"/v1/models/{OPEN}/generate", person="pat", headers=self.SPOOFS
        )
        assert (answer.status, answer.rule) == (200, "public")
        [seen] = reached(gateway, mark)
        assert (seen["model"], seen["person"]) == (OPEN, "pat")
        # The gateway's token for the service never travels on to the model.
        assert seen["token"] is None


class TestUnauthenticatedAndOddRequestsAreRefused:
    """No user, an unknown credential, a path that is not canonical, the decision location
    itself: refused by nginx before anything reaches the model."""

    @pytest.mark.parametrize("authorization", [None, "Bearer tok-nobody", "Basic YWxpY2U6eA=="])
    def test_no_user_no_request(self, gateway: Gateway, authorization: str | None) -> None:
        mark = len(gateway.model.seen)
        headers = {} if authorization is None else {"Authorization": authorization}
        answer = gateway.client.request(f"/v1/models/{OPEN}/generate", headers=headers)
        assert answer.status == 401
        assert reached(gateway, mark) == []

    @pytest.mark.parametrize(
        "path",
        [
            f"/v1/models/{CLOSED}/../{OPEN}/generate",
            f"/v1/models/{OPEN}/../../models/{CLOSED}/generate",
            f"/v1/models/{OPEN}/x/..%2f..%2f{CLOSED}/generate",
            f"/v1/models/{OPEN}%2f..%2f{CLOSED}/generate",
            f"/v1/models/{OPEN}/%2e%2e/{CLOSED}/generate",
            f"/v1/models//{OPEN}/generate",
            f"/v1/models/./{OPEN}/generate",
            "/v1/models/%61urora/generate",
        ],
    )
    def test_a_path_that_is_not_canonical_is_refused(self, gateway: Gateway, path: str) -> None:
        """The model nginx asks about is the model the backend serves, whatever the backend's
        own decoding of ``..``, ``%2f`` or ``//``: such paths never get there."""
        mark = len(gateway.model.seen)
        answer = gateway.client.request(path, person="fred")
        assert answer.status in (400, 404), (path, answer)
        assert reached(gateway, mark) == []

    def test_the_decision_location_is_internal(self, gateway: Gateway) -> None:
        answer = gateway.client.request("/_gatekeeper_access", person="alice")
        assert answer.status == 404
        assert gateway.client.request("/v1/models/", person="alice").status == 404


class TestTheGatewayFailsClosed:
    """A service that does not know the gateway's token, or does not answer, denies everyone."""

    def test_a_gateway_the_service_does_not_know_is_denied(
        self, gateway: Gateway, tmp_path: Path
    ) -> None:
        port = free_port()
        config = nginx_config(
            tmp_path / "nginx",
            port=port,
            service_port=gateway.service.port,
            model_port=gateway.model.port,
            people={bearer(person): person for person in EVERYONE},
            token=GATEWAY_TOKEN + "-not-it",
        )
        mark = len(gateway.model.seen)
        with running_nginx(config, port):
            client = GatewayClient(port)
            try:
                answer = client.use(OPEN, "alice")
            finally:
                client.close()
        assert answer.status == 401
        assert reached(gateway, mark) == []
        # The service logged the refusal (and not the token it was offered).
        [refused] = [
            line
            for line in gateway.service.edge_log()
            if line.get("request_id") == answer.request_id
        ]
        assert (refused["event"], refused["status"]) == ("access_refused", 401)
        assert GATEWAY_TOKEN not in gateway.service.log_file.read_text()

    def test_no_service_no_model(self, gateway: Gateway, tmp_path: Path) -> None:
        port = free_port()
        config = nginx_config(
            tmp_path / "nginx",
            port=port,
            service_port=free_port(),  # nothing listens there
            model_port=gateway.model.port,
            people={bearer(person): person for person in EVERYONE},
        )
        mark = len(gateway.model.seen)
        with running_nginx(config, port):
            client = GatewayClient(port)
            try:
                answer = client.use(OPEN, "alice")
            finally:
                client.close()
        assert answer.status == 500
        assert reached(gateway, mark) == []

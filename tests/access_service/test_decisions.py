"""Decisions over real HTTP: the rule, the status code a gateway subrequest expects, the JSON,
the headers, the inputs (headers or query), and the edge log."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.access_service.server import Running
from gatekeeper.access_service.settings import ServiceSettings
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.models.enums import VettingTier
from tests.access_service.service import edge_lines, gateway, running, service_settings

FIELDS = {
    "decision",
    "rule",
    "reason",
    "order_id",
    "grant_id",
    "person",
    "model",
    "version",
    "surface",
    "view_seq",
    "view_age_ms",
}


class TestRules:
    """Each rule answers with 200 (allow) or 403 (deny), the rule in the JSON and in
    X-Gatekeeper-Rule, and the order in X-Gatekeeper-Order when an order decided."""

    @pytest.mark.parametrize(
        ("person", "model", "status", "rule", "order"),
        [
            ("alice", "aurora", 200, "grant", None),
            ("sam", "aurora", 200, "grant", None),
            ("bruno", "aurora", 403, "order", "ec-1"),
            ("greta", "aurora", 403, "order", "ec-1"),
            ("casey", "aurora", 403, "fail_closed", "ec-1"),
            ("walker", "nova", 200, "public", None),
            ("walker", "aurora", 403, "no_grant", None),
            ("ivan", "aurora", 403, "no_grant", None),
            ("nobody", "aurora", 403, "unknown_person", None),
        ],
    )
    def test_rule(
        self,
        service: Running,
        person: str,
        model: str,
        status: int,
        rule: str,
        order: str | None,
    ) -> None:
        with gateway(service) as gw:
            answer = gw.ask(person, model)
        assert answer.status_code == status
        body = answer.json()
        assert set(body) == FIELDS
        decision = "allow" if status == 200 else "deny"
        assert body["decision"] == decision
        assert body["rule"] == rule
        assert body["order_id"] == order
        assert (body["person"], body["model"], body["surface"]) == (person, model, "api")
        assert body["version"] is None
        assert answer.headers["x-gatekeeper-decision"] == decision
        assert answer.headers["x-gatekeeper-rule"] == rule
        assert answer.headers.get("x-gatekeeper-order") == order
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert "\n" not in body["reason"] and body["reason"]
        assert 0 <= body["view_age_ms"] < 2000

    def test_grant_names_the_grant(self, service: Running, world_url: str) -> None:
        with AccessRegistry(world_url) as registry:
            grants = registry.list_grants("aurora-2")
        [acme] = [g.grant_id for g in grants if g.partner_id == "acme"]
        with gateway(service) as gw:
            body = gw.ask("alice").json()
        assert body["grant_id"] == acme
        assert acme in body["reason"]

    def test_tier_no_longer_admitted(self, world_url: str, tmp_path: Path) -> None:
        with AccessRegistry(world_url) as registry:
            registry.set_partner_tier("shield", VettingTier.IDENTITY_VERIFIED)
        with running(service_settings(world_url, tmp_path)) as handle, gateway(handle) as gw:
            answer = gw.ask("sam")
        assert answer.status_code == 403
        assert answer.json()["rule"] == "tier"

    def test_version_and_surface(self, service: Running) -> None:
        """A version or surface the grant does not cover is no grant; one it covers allows."""
        with gateway(service) as gw:
            assert gw.ask("alice", version="2").status_code == 200
            other = gw.ask("alice", version="3")
            app = gw.ask("alice", surface="app")
            explicit = gw.ask("alice", surface="api", version="2")
        assert (other.status_code, other.json()["rule"]) == (403, "no_grant")
        assert other.json()["version"] == "3"
        assert (app.status_code, app.json()["rule"]) == (403, "no_grant")
        assert app.json()["surface"] == "app"
        assert explicit.status_code == 200

    def test_any_method_and_any_path_under_decision(self, service: Running) -> None:
        """Envoy ext_authz appends the original path and keeps the method."""
        with gateway(service) as gw:
            headers = {
                "X-Gatekeeper-Gateway-Token": gw.token or "",
                "X-Gatekeeper-Person": "bruno",
                "X-Gatekeeper-Model": "aurora",
            }
            post = gw.client.post("/v1/decision/v1/chat/completions?stream=true", headers=headers)
            head = gw.client.head("/v1/decision", headers=headers)
            allowed = gw.client.put(
                "/v1/decision/x", headers=headers | {"X-Gatekeeper-Person": "alice"}
            )
        assert (post.status_code, post.json()["rule"]) == (403, "order")
        assert head.status_code == 403 and head.headers["x-gatekeeper-rule"] == "order"
        assert allowed.status_code == 200


class TestInputs:
    """Inputs come as headers or as query parameters; both given and different is refused;
    malformed input is a 403 ``invalid_request`` with a one-line reason (a 400 would become a
    500 at nginx); no person at all is a 401."""

    def test_query_parameters(self, service: Running) -> None:
        with gateway(service) as gw:
            answer = gw.ask(None, None, params={"person": "alice", "model": "aurora"})
            denied = gw.ask(None, None, params={"person": "bruno", "model": "aurora"})
        assert answer.status_code == 200 and answer.json()["person"] == "alice"
        assert denied.status_code == 403 and denied.json()["rule"] == "order"

    def test_header_and_query_agreeing(self, service: Running) -> None:
        with gateway(service) as gw:
            answer = gw.ask("alice", params={"person": "alice", "surface": "api"})
        assert answer.status_code == 200

    @pytest.mark.parametrize("name", ["person", "model", "version", "surface"])
    def test_header_and_query_disagreeing(self, service: Running, name: str) -> None:
        query = {"person": "bruno", "model": "nova", "version": "3", "surface": "app"}
        with gateway(service) as gw:
            answer = gw.ask(
                "alice", "aurora", params={name: query[name]}, version="2", surface="api"
            )
        assert answer.status_code == 403
        body = answer.json()
        assert body["rule"] == "invalid_request"
        assert "disagree" in body["reason"]

    def test_unrelated_query_parameters_are_ignored(self, service: Running) -> None:
        with gateway(service) as gw:
            answer = gw.ask("alice", params={"stream": "true", "q": "x" * 100})
        assert answer.status_code == 200

    @pytest.mark.parametrize(
        ("inputs", "says"),
        [
            ({"person": "Alice"}, "X-Gatekeeper-Person must be a person id"),
            ({"person": "a" * 65}, "X-Gatekeeper-Person must be a person id"),
            ({"person": "al ice"}, "X-Gatekeeper-Person must be a person id"),
            ({"person": "alice;drop"}, "X-Gatekeeper-Person must be a person id"),
            ({"person": "-alice"}, "X-Gatekeeper-Person must be a person id"),
            ({"model": "aurora/../x"}, "X-Gatekeeper-Model must be a model name"),
            ({"model": "m" * 65}, "X-Gatekeeper-Model must be a model name"),
            ({"model": ""}, "no X-Gatekeeper-Model"),
            ({"version": "v" * 201}, "X-Gatekeeper-Version must be 1-200"),
            ({"version": " 2"}, "X-Gatekeeper-Version must be 1-200"),
            ({"surface": "desktop"}, "X-Gatekeeper-Surface must be one of api, app"),
        ],
    )
    def test_malformed(self, service: Running, inputs: dict[str, str], says: str) -> None:
        sent = {"person": "alice", "model": "aurora"} | inputs
        with gateway(service) as gw:
            answer = gw.ask(None, None, params=sent)
        assert answer.status_code == 403
        body = answer.json()
        assert body["rule"] == "invalid_request"
        assert body["decision"] == "deny"
        assert body["reason"].startswith(says)
        assert "\n" not in body["reason"]
        # The malformed value is not echoed anywhere.
        for name, value in inputs.items():
            if value.strip():
                assert body[name] is None
        assert answer.headers["x-gatekeeper-rule"] == "invalid_request"

    def test_non_ascii_header(self, service: Running) -> None:
        with gateway(service) as gw:
            answer = gw.ask(None, headers={"X-Gatekeeper-Person": "al\xefce".encode()})
        assert answer.status_code == 403
        assert answer.json()["reason"] == "X-Gatekeeper-Person is not ASCII"

    def test_no_person_is_unauthenticated(self, service: Running) -> None:
        with gateway(service) as gw:
            missing = gw.ask(None)
            empty = gw.ask("")
        for answer in (missing, empty):
            assert answer.status_code == 401
            assert answer.json() == {
                "error": "no X-Gatekeeper-Person: the gateway did not say who the user is "
                "(authenticate them at the gateway)"
            }
            assert answer.headers["x-gatekeeper-decision"] == "deny"


class TestEdgeLog:
    """Every deny is one JSON line with the rule and the order; allows are written as sampled;
    the request id is carried over when well formed."""

    def test_every_deny_and_every_allow_at_one(
        self, service: Running, settings: ServiceSettings
    ) -> None:
        with gateway(service) as gw:
            gw.ask("alice", headers={"X-Request-Id": "req-1"})
            gw.ask("bruno", headers={"X-Request-Id": "req-2"})
            gw.ask("casey", version="2")
            gw.ask("Bad Person")
        lines = edge_lines(settings)
        assert [(line["decision"], line["rule"]) for line in lines] == [
            ("allow", "grant"),
            ("deny", "order"),
            ("deny", "fail_closed"),
            ("deny", "invalid_request"),
        ]
        allow, order, unknown, invalid = lines
        assert allow["sampled"] is True and allow["request_id"] == "req-1"
        assert allow["grant_id"] is not None
        assert order == order | {
            "event": "access_decision",
            "order_id": "ec-1",
            "person": "bruno",
            "model": "aurora",
            "version": None,
            "surface": "api",
            "request_id": "req-2",
            "sampled": False,
            "view_seq": order["view_seq"],
        }
        assert order["ts"].endswith("Z")
        assert unknown["version"] == "2" and unknown["order_id"] == "ec-1"
        assert invalid["person"] is None

    def test_allows_not_sampled_at_zero(self, world_url: str, tmp_path: Path) -> None:
        settings = service_settings(world_url, tmp_path, allow_sample=0.0)
        with running(settings) as handle, gateway(handle) as gw:
            for _ in range(20):
                assert gw.ask("alice").status_code == 200
            assert gw.ask("bruno").status_code == 403
        lines = edge_lines(settings)
        assert [(line["decision"], line["person"]) for line in lines] == [("deny", "bruno")]

    def test_malformed_request_id_is_dropped(
        self, service: Running, settings: ServiceSettings
    ) -> None:
        with gateway(service) as gw:
            gw.ask("bruno", headers={"X-Request-Id": 'x"}\n{"forged":1'.replace("\n", " ")})
            gw.ask("bruno", headers={"X-Request-Id": "r" * 129})
        assert [line["request_id"] for line in edge_lines(settings)] == [None, None]


class TestHealth:
    """/healthz and /readyz answer without a token and say nothing about the registry; other
    paths are 404."""

    def test_health_and_ready(self, service: Running) -> None:
        with gateway(service, token=None) as gw:
            health = gw.client.get("/healthz")
            ready = gw.client.get("/readyz")
            other = gw.client.get("/v1/decisions")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert other.status_code == 404

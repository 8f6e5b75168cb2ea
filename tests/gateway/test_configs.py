"""The gateway configurations Gatekeeper ships (``deploy/nginx``, ``deploy/envoy``,
``deploy/traefik``) are the ones docs/access.md quotes, and each is well formed: nginx's is
accepted by ``nginx -t`` (and runs the whole mid-2026 sequence in test_mid_2026.py); Envoy's and
Traefik's (not run here) parse as YAML and ask the service the questions of its interface."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.nginx import HTTP_PART, SERVER_PART, free_port, nginx_test
from gatekeeper.config import load_worker_config
from tests.gateway.harness import ROOT, nginx_binary, nginx_config

DOCS = ROOT / "docs" / "access.md"
ENVOY = ROOT / "deploy" / "envoy" / "gatekeeper-ext-authz.yaml"
TRAEFIK = ROOT / "deploy" / "traefik" / "gatekeeper-forward-auth.yaml"
#: The headers of the decision API a gateway sets (the person, the model, the surface).
QUESTION = {"x-gatekeeper-person", "x-gatekeeper-model", "x-gatekeeper-surface"}


def fenced_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```\w*\n(.*?)^```$", text, re.M | re.S)]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


class TestTheDocsQuoteTheShippedFiles:
    """docs/access.md shows each shipped configuration exactly as the tests use it."""

    @pytest.mark.parametrize("path", [HTTP_PART, SERVER_PART, ENVOY, TRAEFIK], ids=lambda p: p.name)
    def test_quoted_verbatim(self, path: Path) -> None:
        assert path.read_text() in fenced_blocks(DOCS.read_text())


class TestTheDocumentedServiceConfiguration:
    """The ``[access_service]`` section docs/access.md shows is one the service accepts."""

    def test_it_loads(self, tmp_path: Path) -> None:
        text = DOCS.read_text()
        section = text[text.index("## Enforcing at the gateway") :]
        block = re.search(r"^```toml\n(.*?)^```$", section, re.M | re.S)
        assert block is not None
        path = tmp_path / "gatekeeper.toml"
        path.write_text(block.group(1))
        loaded = load_worker_config(path, required=True).access_service
        assert loaded is not None
        assert loaded.tokens_file == Path("/srv/gatekeeper/gateway-tokens")
        assert (loaded.port, loaded.staleness, loaded.poll) == (8470, 2.0, 0.1)


class TestNginx:
    """nginx accepts the shipped parts as the docs tell a site to include them."""

    def test_nginx_accepts_the_shipped_configuration(self, tmp_path: Path) -> None:
        nginx_binary()
        config = nginx_config(
            tmp_path,
            port=free_port(),
            service_port=free_port(),
            model_port=free_port(),
            people={"tok-alice": "alice"},
        )
        checked = nginx_test(config)
        assert checked.returncode == 0, checked.stderr
        assert "syntax is ok" in checked.stderr

    def test_the_decision_subrequest_sets_every_question_header_itself(self) -> None:
        server = SERVER_PART.read_text()
        decision = server[server.index("location = /_gatekeeper_access") :]
        assert "internal;" in decision
        assert "proxy_pass http://gatekeeper_access/v1/decision;" in decision
        assert "proxy_pass_request_body off;" in decision
        assert 'proxy_set_header Content-Length "";' in decision
        for header, value in [
            ("X-Gatekeeper-Person", "$gk_person"),
            ("X-Gatekeeper-Model", "$gk_model"),
            ("X-Gatekeeper-Version", '""'),
            ("X-Gatekeeper-Surface", "api"),
            ("X-Request-Id", "$request_id"),
            ("Authorization", '""'),
            ("Cookie", '""'),
        ]:
            assert f"proxy_set_header {header} {value};" in decision, header
        assert "include /etc/nginx/gatekeeper/gateway-token.conf;" in decision


class TestEnvoy:
    """The ext_authz filter asks /v1/decision with the question's headers, fails closed, and
    runs after the filters that set those headers."""

    def filters(self) -> list[dict[str, Any]]:
        [listener] = load(ENVOY)["static_resources"]["listeners"]
        [chain] = listener["filter_chains"]
        [manager] = chain["filters"]
        assert manager["typed_config"]["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
        assert manager["typed_config"]["normalize_path"] is True
        filters: list[dict[str, Any]] = manager["typed_config"]["http_filters"]
        return filters

    def test_ext_authz_http_service(self) -> None:
        filters = {f["name"]: f["typed_config"] for f in self.filters()}
        ext_authz = filters["envoy.filters.http.ext_authz"]
        assert ext_authz["failure_mode_allow"] is False
        service = ext_authz["http_service"]
        assert service["path_prefix"] == "/v1/decision"
        allowed = {p["exact"] for p in ext_authz["allowed_headers"]["patterns"]}
        assert allowed >= QUESTION
        assert "authorization" not in allowed and "cookie" not in allowed
        added = {h["key"] for h in service["authorization_request"]["headers_to_add"]}
        assert added == {"X-Gatekeeper-Gateway-Token"}
        client = service["authorization_response"]["allowed_client_headers"]["patterns"]
        assert {p["exact"] for p in client} == {"x-gatekeeper-rule", "x-gatekeeper-order"}
        clusters = {c["name"] for c in load(ENVOY)["static_resources"]["clusters"]}
        assert service["server_uri"]["cluster"] in clusters

    def test_the_question_is_set_before_it_is_asked(self) -> None:
        names = [f["name"] for f in self.filters()]
        assert names == [
            "envoy.filters.http.lua",
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.ext_authz",
            "envoy.filters.http.router",
        ]
        lua = self.filters()[0]["typed_config"]["default_source_code"]["inline_string"]
        for header in QUESTION | {"x-gatekeeper-version", "x-gatekeeper-gateway-token"}:
            assert f'"{header}"' in lua  # removed before anything sets it
        jwt = self.filters()[1]["typed_config"]
        [provider] = jwt["providers"].values()
        assert provider["claim_to_headers"] == [
            {"header_name": "x-gatekeeper-person", "claim_name": "sub"}
        ]


class TestTraefik:
    """Every model router clears the client's headers, authenticates the user, names its model
    and then asks the service (mTLS) with only the question's headers."""

    def test_forward_auth(self) -> None:
        middlewares = load(TRAEFIK)["http"]["middlewares"]
        forward = middlewares["gatekeeper-access"]["forwardAuth"]
        assert forward["address"].endswith("/v1/decision")
        assert forward["trustForwardHeader"] is False
        assert {h.lower() for h in forward["authRequestHeaders"]} >= QUESTION
        assert "Authorization" not in forward["authRequestHeaders"]
        assert set(forward["authResponseHeaders"]) <= {
            "X-Gatekeeper-Decision",
            "X-Gatekeeper-Rule",
            "X-Gatekeeper-Order",
        }
        assert set(forward["tls"]) == {"ca", "cert", "key"}
        cleared = middlewares["gatekeeper-clear"]["headers"]["customRequestHeaders"]
        assert {h.lower() for h, v in cleared.items() if v == ""} >= QUESTION

    def test_every_model_router_names_its_own_model(self) -> None:
        config = load(TRAEFIK)["http"]
        assert config["routers"]
        for name, router in config["routers"].items():
            model = re.fullmatch(r"PathPrefix\(`/v1/models/([a-z0-9._-]+)/`\)", router["rule"])
            assert model is not None, router["rule"]
            chain = router["middlewares"]
            assert chain[0] == "gatekeeper-clear" and chain[-1] == "gatekeeper-access", name
            headers = [
                config["middlewares"][m]["headers"]["customRequestHeaders"]
                for m in chain[1:-1]
                if "headers" in config["middlewares"][m]
            ]
            assert {"X-Gatekeeper-Model": model.group(1), "X-Gatekeeper-Surface": "api"} in headers

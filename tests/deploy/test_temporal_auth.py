"""The compose stack's Temporal server authorizes every call with a JWT.

The server reads ``deploy/temporal/config/gatekeeper.yaml`` (``TEMPORAL_SERVER_CONFIG_FILE_PATH``):
a template whose only action is ``env "NAME"``, rendered here the way the server's loader renders
it, with the temporal service's environment as the real compose parser resolves it, then parsed
as YAML. No Docker engine is here, so nothing is started: what the server would be configured
with is checked, not how it behaves (that is Temporal's default authorizer; see
docs/deployment.md for the roles and which API each needs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gatekeeper import temporal_auth

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_BINARY = shutil.which("docker-compose")
#: The one template action the config may use: ``{{ env "NAME" }}``.
ENV_ACTION = re.compile(r'\{\{\s*env\s+"([A-Z][A-Z0-9_]*)"\s*\}\}')
#: Keys of Temporal 1.31's ``config.Authorization`` and ``config.JWTKeyProvider`` (yaml tags):
#: a misspelt key would be ignored by the server, silently.
AUTHORIZATION_KEYS = {
    "jwtKeyProvider",
    "permissionsClaimName",
    "permissionsRegex",
    "authorizer",
    "claimMapper",
    "authHeaderName",
    "authExtraHeaderName",
    "audience",
}
KEY_PROVIDER_KEYS = {"keySourceURIs", "refreshInterval"}
LOOPBACK = {"127.0.0.1", "::1"}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file as written."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as Debian's docker-compose resolves it, with a clean environment (every
    ``${VAR:-default}`` at its default)."""
    if COMPOSE_BINARY is None:
        pytest.skip("apt-get install -y docker-compose")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEKEEPER_", "TEMPORAL_", "POSTGRES_"))
    }
    result = subprocess.run(
        [COMPOSE_BINARY, "-f", str(COMPOSE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def mounted_host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file or directory a service's volume mounts at ``container_path`` (read-only)."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, read_only = volume["source"], volume["target"], volume.get("read_only")
        else:
            parts = volume.split(":")
            source, target, read_only = parts[0], parts[1], parts[2:] == ["ro"]
        if PurePosixPath(target) == PurePosixPath(container_path):
            assert read_only, f"{container_path} is mounted writable"
            path = Path(source)
            return path if path.is_absolute() else ROOT / path
    raise AssertionError(f"nothing is mounted at {container_path}")


def config_path(services: dict[str, Any]) -> tuple[str, Path]:
    """Where the server reads its config (in the container), and the host file mounted there."""
    temporal = services["temporal"]
    inside = environment(temporal)["TEMPORAL_SERVER_CONFIG_FILE_PATH"]
    return inside, mounted_host_path(temporal, inside)


def render(template: str, env: dict[str, str]) -> str:
    """What the server's loader makes of the file: each ``{{ env "NAME" }}`` replaced by the
    variable's value (empty when unset, as sprig's ``env``). Any other action fails the test."""
    rendered = ENV_ACTION.sub(lambda m: env.get(m.group(1), ""), template)
    assert "{{" not in rendered and "}}" not in rendered, "a template action other than env"
    return rendered


@pytest.fixture(scope="module")
def server_config(resolved: dict[str, Any]) -> dict[str, Any]:
    """The server configuration the stack renders, parsed."""
    _, host_file = config_path(resolved["services"])
    rendered = render(host_file.read_text(), environment(resolved["services"]["temporal"]))
    loaded: dict[str, Any] = yaml.safe_load(rendered)
    return loaded


class TestTheServerReadsThisConfig:
    """The temporal service points the server at the mounted file, which the loader treats as a
    template that only looks up environment variables the service sets."""

    def test_config_file_is_mounted_where_the_server_reads_it(self, raw: dict[str, Any]) -> None:
        inside, host_file = config_path(raw["services"])
        assert PurePosixPath(inside).is_absolute()
        assert host_file.is_file()
        assert host_file.is_relative_to(ROOT / "deploy" / "temporal")
        # The loader renders a file only when a comment in its first KiB says enable-template.
        head = host_file.read_bytes()[:1024].decode()
        assert any(
            line.strip().startswith("#") and "enable-template" in line for line in head.splitlines()
        )

    def test_only_environment_lookups_of_variables_the_service_sets(
        self, raw: dict[str, Any]
    ) -> None:
        _, host_file = config_path(raw["services"])
        text = host_file.read_text()
        names = set(ENV_ACTION.findall(text))
        assert names, "the database credentials come from the environment"
        assert text.count("{{") == len(ENV_ACTION.findall(text)), "another template action"
        env = environment(raw["services"]["temporal"])
        assert names <= env.keys(), f"not set by the temporal service: {names - env.keys()}"
        # As written (values unrendered) it is YAML already: every action sits in a quoted value.
        assert yaml.safe_load(text)["global"]["authorization"]

    def test_rendered_config_reaches_the_stack_database(
        self, resolved: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        database = environment(resolved["services"]["postgresql"])
        stores = server_config["persistence"]["datastores"]
        names = {}
        for store in ("default", "visibility"):
            sql = stores[store]["sql"]
            assert sql["pluginName"] == "postgres12"
            assert sql["connectAddr"] == "postgresql:5432"
            assert sql["user"] == database["POSTGRES_USER"]
            assert sql["password"] == database["POSTGRES_PASSWORD"]
            names[store] = sql["databaseName"]
        assert names == {"default": "temporal", "visibility": "temporal_visibility"}
        script = (ROOT / "deploy/temporal/setup-postgres.sh").read_text()
        assert all(f"{name}:" in script for name in names.values()), "the schema job makes them"
        assert server_config["persistence"]["visibilityStore"] == "visibility"


class TestJwtAuthorization:
    """Every frontend call needs a JWT signed by a key in the stack's key set (or the
    operator's second key set), for this stack's audience; roles come from its ``permissions``
    claim, read by Temporal's default claim mapper and enforced by its default authorizer."""

    def test_default_authorizer_and_claim_mapper(self, server_config: dict[str, Any]) -> None:
        authorization = server_config["global"]["authorization"]
        assert set(authorization) <= AUTHORIZATION_KEYS, set(authorization) - AUTHORIZATION_KEYS
        assert authorization["authorizer"] == "default"
        assert authorization["claimMapper"] == "default"

    def test_permissions_claim_is_the_one_tokens_carry(self, server_config: dict[str, Any]) -> None:
        authorization = server_config["global"]["authorization"]
        assert authorization["permissionsClaimName"] == temporal_auth.PERMISSIONS_CLAIM
        # A custom regex would change how `<namespace>:<role>` is read; the default is meant.
        assert not authorization.get("permissionsRegex")

    def test_tokens_must_name_this_audience(
        self, resolved: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        audience = server_config["global"]["authorization"]["audience"]
        assert audience == temporal_auth.DEFAULT_AUDIENCE
        assert environment(resolved["services"]["temporal"])["TEMPORAL_JWT_AUDIENCE"] == audience

    def test_key_sets_are_the_stack_jwks_and_an_optional_second(
        self, server_config: dict[str, Any]
    ) -> None:
        provider = server_config["global"]["authorization"]["jwtKeyProvider"]
        assert set(provider) <= KEY_PROVIDER_KEYS
        first, *rest = provider["keySourceURIs"]
        assert urlsplit(first).scheme == "http" and urlsplit(first).hostname == "temporal-jwks"
        assert rest == [""], "the second key set is empty unless TEMPORAL_JWT_KEY_SOURCE2 is set"
        assert provider["refreshInterval"] == "1m", "a retired key stops counting within a minute"

    def test_second_key_set_comes_from_the_operator(self) -> None:
        if COMPOSE_BINARY is None:
            pytest.skip("apt-get install -y docker-compose")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        env["TEMPORAL_JWT_KEY_SOURCE2"] = "https://idp.example/.well-known/jwks.json"
        env["TEMPORAL_JWT_AUDIENCE"] = "temporal-prod"
        result = subprocess.run(
            [COMPOSE_BINARY, "-f", str(COMPOSE), "config"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        services = yaml.safe_load(result.stdout)["services"]
        _, host_file = config_path(services)
        config = yaml.safe_load(render(host_file.read_text(), environment(services["temporal"])))
        authorization = config["global"]["authorization"]
        assert authorization["jwtKeyProvider"]["keySourceURIs"][1] == (
            "https://idp.example/.well-known/jwks.json"
        )
        assert authorization["audience"] == "temporal-prod"

    def test_jwks_uri_is_served_from_the_mounted_key_set(
        self, resolved: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        services = resolved["services"]
        uri = urlsplit(
            server_config["global"]["authorization"]["jwtKeyProvider"]["keySourceURIs"][0]
        )
        jwks = services[uri.hostname]
        argv = [*jwks.get("entrypoint", []), *(jwks.get("command") or [])]
        assert argv[:3] == ["python", "-m", "http.server"]
        assert str(uri.port) == argv[3]
        served = argv[argv.index("--directory") + 1]
        host_dir = mounted_host_path(jwks, served)
        key_set = host_dir / uri.path.lstrip("/")
        assert key_set.is_file(), f"{key_set} is what the server fetches"
        keys = json.loads(key_set.read_text())["keys"]
        assert isinstance(keys, list)
        for key in keys:
            assert key.get("kid") and key.get("kty") in ("EC", "RSA"), "Temporal reads EC or RSA"
            assert not {"d", "p", "q"} & key.keys(), "a private key in the public key set"
        # Inside the network only, and the server waits until it answers.
        assert "ports" not in jwks
        assert services["temporal"]["depends_on"][uri.hostname]["condition"] == "service_healthy"
        assert uri.path in " ".join(jwks["healthcheck"]["test"])

    def test_shipped_key_set_trusts_no_key(self) -> None:
        """Out of the box no token is accepted: the operator adds their own key."""
        shipped = json.loads((ROOT / "deploy/temporal/jwks/jwks.json").read_text())
        assert shipped == {"keys": []}


class TestNothingBypassesTheAuthorizer:
    """The server's own worker service reaches an internal frontend that skips authorization;
    that frontend, like every internal service, listens on the container's loopback only."""

    def test_only_the_public_frontend_listens_beyond_loopback(
        self, server_config: dict[str, Any]
    ) -> None:
        services = server_config["services"]
        assert "internal-frontend" in services
        for name, service in services.items():
            address = service["rpc"]["bindOnIP"]
            if name == "frontend":
                assert address == "0.0.0.0"
            else:
                assert address in LOOPBACK, f"{name} listens on {address}"
        assert server_config["global"]["membership"]["broadcastAddress"] in LOOPBACK
        # Without an internal frontend the worker service would call the public one, untokened.
        assert "publicClient" not in server_config

    def test_every_configured_service_is_started(
        self, resolved: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        """`temporal-server start` runs frontend, history, matching and worker unless
        TEMPORAL_SERVICES names others: the internal frontend must be named, or the worker
        service finds no frontend to call."""
        started = environment(resolved["services"]["temporal"])["TEMPORAL_SERVICES"].split(",")
        assert sorted(started) == sorted(server_config["services"])

    def test_published_port_is_the_public_frontend(
        self, raw: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        published = {str(p).split(":")[-1] for p in raw["services"]["temporal"]["ports"]}
        assert published == {str(server_config["services"]["frontend"]["rpc"]["grpcPort"])}

    def test_dynamic_config_still_applies(
        self, raw: dict[str, Any], server_config: dict[str, Any]
    ) -> None:
        inside = server_config["dynamicConfigClient"]["filepath"]
        mounted = mounted_host_path(raw["services"]["temporal"], str(PurePosixPath(inside).parent))
        dynamic = yaml.safe_load((mounted / PurePosixPath(inside).name).read_text())
        assert dynamic["frontend.enableUpdateWorkflowExecution"][0]["value"] is True


class TestGatekeeperProcessesCarryTokens:
    """The worker and the setup job send their own token, read from
    ``GATEKEEPER_TEMPORAL_TOKEN_FILE`` in a directory only that service mounts (so a token renewed
    in place reaches the running worker); the worker's writes, the setup job's administers."""

    def test_each_client_reads_its_own_token_directory(self, resolved: dict[str, Any]) -> None:
        sources = {}
        for name in ("worker", "gatekeeper-setup"):
            service = resolved["services"][name]
            token_file = PurePosixPath(environment(service)["GATEKEEPER_TEMPORAL_TOKEN_FILE"])
            host_dir = mounted_host_path(service, str(token_file.parent))
            assert host_dir.is_relative_to(ROOT / "deploy" / "temporal" / "tokens")
            sources[name] = host_dir / token_file.name
        assert sources["worker"] != sources["gatekeeper-setup"], "the worker gets no admin token"
        assert sources["worker"].parent.name == "worker"
        assert sources["gatekeeper-setup"].parent.name == "setup"
        for token in sources.values():
            ignored = subprocess.run(
                ["git", "check-ignore", "-q", str(token)], cwd=ROOT, check=False
            )
            assert ignored.returncode == 0, f"{token} is not ignored by git"

    def test_tls_off_is_explicit_for_the_stack_network(self, raw: dict[str, Any]) -> None:
        """A bearer token turns TLS on by default; the stack's frontend has none, so the
        clients say so (docs/deployment.md says what to do beyond one machine)."""
        for name in ("worker", "gatekeeper-setup"):
            assert environment(raw["services"][name])["TEMPORAL_TLS"] == "false"

    def test_no_service_token_outside_the_worker_and_setup(self, raw: dict[str, Any]) -> None:
        """The codec server and the key set server never call Temporal; the UI forwards the
        token of the person signed in, never a service's."""
        for name in ("codec-server", "temporal-jwks", "temporal-ui"):
            service = raw["services"][name]
            assert "GATEKEEPER_TEMPORAL_TOKEN_FILE" not in environment(service), name
            for volume in service.get("volumes", []):
                assert "tokens" not in str(volume), name
        ui = environment(raw["services"]["temporal-ui"])
        assert ui["TEMPORAL_AUTH_ENABLED"] == "${TEMPORAL_UI_AUTH_ENABLED:-false}"

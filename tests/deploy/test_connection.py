"""The connection examples in docs/deployment.md, loaded through envconfig as Gatekeeper does.

Each example's variables (or TOML profile) go through ``Settings.from_env`` and
``gatekeeper.client.connect_config``; the test checks the connection arguments a worker would
pass to ``Client.connect``: address, namespace, API key, TLS and the mTLS files' contents.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from temporalio.service import TLSConfig

from gatekeeper.client import connect_config
from gatekeeper.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
TLS_DIR = "/etc/gatekeeper/tls"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def exported(block: str) -> dict[str, str]:
    env = {}
    for name, value in re.findall(r"^export (TEMPORAL_\w+)=(.*)$", block, re.MULTILINE):
        env[name] = "secret-from-file" if value.startswith("$(") else value
    return env


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """Stand-ins for the certificate files the examples name (envconfig reads them)."""
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_text(f"-----BEGIN TEST-----\n{name}\n-----END TEST-----\n")
    return tmp_path


def load(env: dict[str, str], tls_files: Path) -> dict[str, Any]:
    env = {k: v.replace(TLS_DIR, str(tls_files)) for k, v in env.items()}
    return connect_config(Settings.from_env(env))


def example(title: str) -> dict[str, str]:
    text = DOC.read_text()
    start = text.index(f"### {title}")
    block = re.search(r"```sh\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, title
    return exported(block.group(1))


class TestEnvironmentExamples:
    """Each documented set of variables yields the connection it promises."""

    def test_self_hosted_mtls(self, tls_files: Path) -> None:
        config = load(example("A self-hosted cluster with mTLS"), tls_files)
        assert config["target_host"] == "temporal.internal.example:7233"
        assert config["namespace"] == "gatekeeper"
        tls = config["tls"]
        assert isinstance(tls, TLSConfig)
        assert tls.client_cert == (tls_files / "client.pem").read_bytes()
        assert tls.client_private_key == (tls_files / "client.key").read_bytes()
        assert tls.server_root_ca_cert == (tls_files / "ca.pem").read_bytes()
        assert "api_key" not in config

    def test_cloud_api_key(self, tls_files: Path) -> None:
        config = load(example("Temporal Cloud with an API key"), tls_files)
        assert config["target_host"] == "us-east-1.aws.api.temporal.io:7233"
        assert config["namespace"] == "gatekeeper-prod.a1b2c"
        assert config["api_key"] == "secret-from-file"
        assert config["tls"] is True, "an API key turns TLS on"

    def test_cloud_mtls(self, tls_files: Path) -> None:
        config = load(example("Temporal Cloud with mTLS"), tls_files)
        assert config["target_host"].endswith(".tmprl.cloud:7233")
        tls = config["tls"]
        assert isinstance(tls, TLSConfig)
        assert tls.client_cert == (tls_files / "client.pem").read_bytes()
        assert tls.server_root_ca_cert is None, "Cloud's certificate is publicly signed"

    def test_nothing_set_means_local_dev_server(self) -> None:
        config = connect_config(Settings.from_env({"HOME": "/nonexistent"}))
        assert config["target_host"] == "localhost:7233"
        assert config["namespace"] == "default"


class TestProfileExample:
    """The documented TOML file loads, profile by profile, and variables override it."""

    @pytest.fixture
    def config_file(self, tmp_path: Path, tls_files: Path) -> Path:
        [toml] = blocks("toml")
        path = tmp_path / "temporal.toml"
        path.write_text(toml.replace(TLS_DIR, str(tls_files)))
        return path

    def profile(self, config_file: Path, name: str, **extra: str) -> dict[str, Any]:
        env = {"TEMPORAL_CONFIG_FILE": str(config_file), "TEMPORAL_PROFILE": name, **extra}
        return connect_config(Settings.from_env(env))

    def test_cluster_profile(self, config_file: Path, tls_files: Path) -> None:
        config = self.profile(config_file, "cluster")
        assert config["target_host"] == "temporal.internal.example:7233"
        tls = config["tls"]
        assert isinstance(tls, TLSConfig)
        assert tls.domain == "temporal.internal.example"
        assert tls.server_root_ca_cert == (tls_files / "ca.pem").read_bytes()

    def test_cloud_profiles(self, config_file: Path) -> None:
        api = self.profile(config_file, "cloud")
        assert api["api_key"] == "replace-with-your-api-key" and api["tls"] is True
        mtls = self.profile(config_file, "cloud-mtls")
        assert isinstance(mtls["tls"], TLSConfig) and "api_key" not in mtls

    def test_environment_overrides_profile(self, config_file: Path) -> None:
        config = self.profile(config_file, "cloud", TEMPORAL_API_KEY="from-secret-store")
        assert config["api_key"] == "from-secret-store"

    def test_default_profile(self, config_file: Path) -> None:
        config = self.profile(config_file, "default")
        assert config["target_host"] == "localhost:7233"

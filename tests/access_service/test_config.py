"""``[access_service]`` in the worker's configuration file: defaults, and one-line refusals
naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.config import AccessServiceConfig, load_worker_config
from gatekeeper.errors import ConfigError


class TestAccessServiceSection:
    """The section is optional; what it holds is checked when the file is read."""

    def test_defaults(self, tmp_path: Path) -> None:
        path = tmp_path / "gatekeeper.toml"
        path.write_text("")
        section = load_worker_config(path).access_service
        assert section == AccessServiceConfig()
        assert (section.host, section.port) == ("127.0.0.1", 8470)
        assert (section.staleness, section.poll, section.allow_sample) == (2.0, 0.1, 0.01)
        assert section.tokens_file is section.token_env is section.log_file is None

    def test_full_section(self, tmp_path: Path) -> None:
        path = tmp_path / "gatekeeper.toml"
        path.write_text(
            "[access_service]\n"
            'host = "0.0.0.0"\nport = 9000\ntokens_file = "/srv/tokens"\n'
            'token_env = "GW_TOKEN"\ntls_cert = "/srv/c.pem"\ntls_key = "/srv/k.pem"\n'
            'client_ca = "/srv/ca.pem"\nstaleness = 1.5\npoll = 0.05\nallow_sample = 1\n'
            'log_file = "/var/log/edge.jsonl"\n'
        )
        section = load_worker_config(path).access_service
        assert section.port == 9000 and section.client_ca == Path("/srv/ca.pem")
        assert section.staleness == 1.5 and section.allow_sample == 1.0

    @pytest.mark.parametrize(
        ("body", "says"),
        [
            ("poll = 3.0", "poll (3 s) must be shorter than staleness (2 s)"),
            ('tls_cert = "/srv/c.pem"', "tls_cert and tls_key go together"),
            ('client_ca = "/srv/ca.pem"', "client_ca (mTLS) needs tls_cert and tls_key"),
            (
                'tokens_file = "tokens"',
                "access_service.tokens_file: Value error, must be an absolute path",
            ),
            ('token_env = "not a name"', "access_service.token_env: String should match pattern"),
            (
                "allow_sample = 1.5",
                "access_service.allow_sample: Input should be less than or equal to 1",
            ),
            ("staleness = 0", "access_service.staleness: Input should be greater than 0"),
            ("port = 70000", "access_service.port: Input should be less than or equal to 65535"),
            ('shared_secret = "x"', "access_service.shared_secret: Extra inputs are not permitted"),
        ],
    )
    def test_refused(self, tmp_path: Path, body: str, says: str) -> None:
        path = tmp_path / "gatekeeper.toml"
        path.write_text(f"[access_service]\n{body}\n")
        with pytest.raises(ConfigError) as caught:
            load_worker_config(path)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: ")
        assert says in message

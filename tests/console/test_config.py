"""The ``[console]`` section: checked field by field in one line; secrets only by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.config import load_worker_config
from gatekeeper.console.settings import ConsoleSettings
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings

SECRET = "k" * 40


def loaded(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "gatekeeper.toml"
    path.write_text(text)
    return Settings(data_dir=tmp_path, config=load_worker_config(path, required=True), env={})


class TestSection:
    """Bad values are refused when the file is read, naming the field."""

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ('url = "ftp://x.example"', "console.url: Value error, must be an http(s) URL"),
            ('url = "https://x.example/?next=evil"', "must not carry a query"),
            ('url = "https://user:pw@x.example"', "must not carry a query, a fragment or cred"),
            ('oidc_issuer = "https://login.example"', "go together"),
            ('session_secret_env = "not a name"', "console.session_secret_env"),
            ('gateway_key = "console-key.pem"', "console.gateway_key: Value error, must be an"),
            ("dev_sign_in = 3", "console.dev_sign_in"),
            ('colour = "blue"', "console.colour: Extra inputs are not permitted"),
        ],
    )
    def test_refused(self, tmp_path: Path, text: str, problem: str) -> None:
        with pytest.raises(ConfigError) as raised:
            loaded(tmp_path, f"[console]\n{text}\n")
        assert problem in str(raised.value)
        assert "\n" not in str(raised.value)

    def test_a_whole_section(self, tmp_path: Path) -> None:
        settings = loaded(
            tmp_path,
            "[console]\n"
            'url = "https://gatekeeper.example.com/"\n'
            'oidc_issuer = "https://login.example.com/realms/lab/"\n'
            'oidc_client_id = "console"\n'
            'oidc_client_secret_env = "OIDC_SECRET"\n'
            'session_secret_env = "SESSION_SECRET"\n',
        )
        section = settings.config.console
        assert section.url == "https://gatekeeper.example.com", "a base URL loses its slash"
        assert section.oidc_issuer == "https://login.example.com/realms/lab/", "kept as written"


class TestResolved:
    """Secrets come from the variables the section names; a missing one stops the console."""

    def section(self, tmp_path: Path, **env: str) -> Settings:
        settings = loaded(
            tmp_path,
            "[console]\n"
            'oidc_issuer = "https://login.example.com"\n'
            'oidc_client_id = "console"\n'
            'oidc_client_secret_env = "OIDC_SECRET"\n'
            'session_secret_env = "SESSION_SECRET"\n',
        )
        return Settings(data_dir=tmp_path, config=settings.config, env=env)

    def test_resolved_from_the_environment(self, tmp_path: Path) -> None:
        settings = self.section(tmp_path, OIDC_SECRET="client-secret", SESSION_SECRET=SECRET)
        resolved = ConsoleSettings.resolve(settings, host="127.0.0.1", port=8400)
        assert resolved.oidc is not None and resolved.oidc.client_secret == "client-secret"
        assert resolved.session_secret == SECRET
        assert "client-secret" not in repr(resolved) and SECRET not in repr(resolved)
        assert resolved.url == "http://localhost:8400"
        assert not resolved.dev_sign_in

    def test_beyond_loopback_it_needs_its_url(self, tmp_path: Path) -> None:
        settings = self.section(tmp_path, OIDC_SECRET="client-secret", SESSION_SECRET=SECRET)
        with pytest.raises(ConfigError, match="set url in \\[console\\]"):
            ConsoleSettings.resolve(settings, host="0.0.0.0", port=8400)
        public = settings.config.model_copy(
            update={
                "console": settings.config.console.model_copy(
                    update={"url": "https://gatekeeper.example.com"}
                )
            }
        )
        resolved = ConsoleSettings.resolve(
            Settings(data_dir=tmp_path, config=public, env=settings.env), host="0.0.0.0"
        )
        assert resolved.url == "https://gatekeeper.example.com" and resolved.secure_cookies

    def test_missing_or_short_secrets(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"SESSION_SECRET .* at least 32"):
            ConsoleSettings.resolve(self.section(tmp_path, OIDC_SECRET="x", SESSION_SECRET="short"))
        with pytest.raises(ConfigError, match=r"OIDC_SECRET .* is not set"):
            ConsoleSettings.resolve(self.section(tmp_path, SESSION_SECRET=SECRET))

    def test_no_way_to_sign_in(self, tmp_path: Path) -> None:
        settings = Settings(data_dir=tmp_path, env={})
        with pytest.raises(ConfigError, match="session_secret_env"):
            ConsoleSettings.resolve(settings)
        dev = ConsoleSettings.resolve(settings, dev_sign_in=True)
        assert dev.dev_sign_in and len(dev.session_secret) >= 32
        assert not dev.secure_cookies, "plain http on loopback: no Secure flag"

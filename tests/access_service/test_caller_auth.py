"""Who may ask: gateways holding a token (several during a rotation) or a client certificate
(mTLS); a service with neither refuses to start, except on loopback when told to."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

import httpx
import pytest

from gatekeeper.access_service import settings as service_settings_module
from gatekeeper.access_service.settings import CallerAuth
from gatekeeper.errors import ConfigError
from tests.access_service.pki import authority, client_context
from tests.access_service.service import (
    OTHER_TOKEN,
    TOKEN,
    edge_lines,
    gateway,
    running,
    service_settings,
)

TOKEN_ERROR = {
    "error": "a valid X-Gatekeeper-Gateway-Token header is required (the calling gateway's token)"
}


class TestTokens:
    """A request without the gateway token, or with a wrong one, is a 401 with a one-line
    error; the edge log records the refusal and never a token."""

    @pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]])
    def test_refused(self, world_url: str, tmp_path: Path, token: str | None) -> None:
        settings = service_settings(world_url, tmp_path)
        with running(settings) as handle, gateway(handle, token=token) as gw:
            answer = gw.ask("alice")
        assert answer.status_code == 401
        assert answer.json() == TOKEN_ERROR
        [line] = edge_lines(settings)
        assert line["event"] == "access_refused" and line["status"] == 401
        assert "person" not in line  # nothing about the user is recorded for an unknown caller

    def test_several_tokens_and_rotation(self, world_url: str, tmp_path: Path) -> None:
        """Both tokens of a rotation are accepted; once the file holds only the new one, the old
        one is refused without a restart."""
        settings = service_settings(world_url, tmp_path, tokens=[TOKEN, OTHER_TOKEN])
        with (
            running(settings) as handle,
            gateway(handle, token=TOKEN) as old,
            gateway(handle, token=OTHER_TOKEN) as new,
        ):
            assert old.ask("alice").status_code == 200
            assert new.ask("alice").status_code == 200
            assert settings.auth.count == 2
            (tmp_path / "gateway-tokens").write_text(OTHER_TOKEN + "\n")
            deadline = time.monotonic() + 5
            while old.ask("alice").status_code != 401:
                assert time.monotonic() < deadline, "the old token still works after 5 s"
                time.sleep(0.05)
            assert new.ask("alice").status_code == 200

    def test_token_from_the_environment(self, world_url: str, tmp_path: Path) -> None:
        settings = service_settings(
            world_url,
            tmp_path,
            tokens=[],
            token_env="GATEWAY_TOKEN",
            env={"GATEWAY_TOKEN": OTHER_TOKEN},
        )
        with running(settings) as handle, gateway(handle, token=OTHER_TOKEN) as gw:
            assert gw.ask("alice").status_code == 200
            gw.token = TOKEN
            assert gw.ask("alice").status_code == 401

    def test_no_token_in_the_log(self, world_url: str, tmp_path: Path) -> None:
        settings = service_settings(world_url, tmp_path, allow_sample=1.0)
        with running(settings) as handle:
            with gateway(handle) as gw:
                gw.ask("alice")
                gw.ask("bruno")
            with gateway(handle, token="forged-token-0123456789") as forged:
                forged.ask("alice")
        assert settings.log_file is not None
        text = settings.log_file.read_text()
        assert len(text.splitlines()) == 3
        assert TOKEN not in text and "forged-token" not in text

    def test_every_token_compared_in_constant_time(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each accepted token's sha256 digest is compared with ``hmac.compare_digest``, all of
        them whichever matches, so timing says nothing about the tokens."""
        tokens = tmp_path / "tokens"
        tokens.write_text(f"{TOKEN}\n{OTHER_TOKEN}\n")
        auth = CallerAuth(tokens, None)
        compared: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            compared.append((a, b))
            return real(a, b)

        monkeypatch.setattr(service_settings_module.hmac, "compare_digest", spy)
        assert auth.accepts(TOKEN.encode())
        assert not auth.accepts(b"nope")
        digest = hashlib.sha256
        assert compared == [
            (digest(TOKEN.encode()).digest(), digest(TOKEN.encode()).digest()),
            (digest(TOKEN.encode()).digest(), digest(OTHER_TOKEN.encode()).digest()),
            (digest(b"nope").digest(), digest(TOKEN.encode()).digest()),
            (digest(b"nope").digest(), digest(OTHER_TOKEN.encode()).digest()),
        ]


class TestStartRefusals:
    """Without caller authentication the service does not start (one line), except with
    --insecure-no-caller-auth on a loopback host; weak or missing tokens are refused too."""

    @pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "gateway.internal"])
    def test_no_caller_auth_off_loopback(self, world_url: str, tmp_path: Path, host: str) -> None:
        for insecure in (False, True):
            with pytest.raises(ConfigError) as caught:
                service_settings(
                    world_url, tmp_path, tokens=[], host=host, insecure_no_caller_auth=insecure
                )
            message = str(caught.value)
            assert "\n" not in message
            assert message.startswith("access service: ")
            assert "tokens_file or token_env" in message

    def test_no_caller_auth_on_loopback_needs_the_flag(
        self, world_url: str, tmp_path: Path
    ) -> None:
        with pytest.raises(ConfigError, match="no caller authentication"):
            service_settings(world_url, tmp_path, tokens=[])
        settings = service_settings(world_url, tmp_path, tokens=[], insecure_no_caller_auth=True)
        with running(settings) as handle, gateway(handle, token=None) as gw:
            assert gw.ask("alice").status_code == 200

    @pytest.mark.parametrize(
        ("tokens", "says"),
        [
            (["short-token"], r"line 2: too short a token \(under 16 characters\)"),
            (["# only a comment"], "holds no token"),
        ],
    )
    def test_weak_tokens_file(
        self, world_url: str, tmp_path: Path, tokens: list[str], says: str
    ) -> None:
        with pytest.raises(ConfigError, match=says) as caught:
            service_settings(world_url, tmp_path, tokens=tokens)
        assert "short-token" not in str(caught.value)

    def test_missing_tokens_file_and_variable(self, world_url: str, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="cannot read tokens_file"):
            service_settings(world_url, tmp_path, tokens=[], tokens_file=str(tmp_path / "none"))
        with pytest.raises(ConfigError, match=r"variable GW_TOKEN \(token_env\) is unset"):
            service_settings(world_url, tmp_path, tokens=[], token_env="GW_TOKEN")


class TestMutualTls:
    """With client_ca set, a caller needs a certificate that CA signed: one without a
    certificate, or with one another CA signed, is refused at the TLS handshake."""

    def test_mtls(self, world_url: str, tmp_path: Path) -> None:
        gateways = authority(tmp_path, "gateway-ca")
        servers = authority(tmp_path, "server-ca")
        rogue = authority(tmp_path, "rogue-ca")
        server = servers.issue(tmp_path, "access-service", server=True)
        good = gateways.issue(tmp_path, "nginx", server=False)
        forged = rogue.issue(tmp_path, "mallory", server=False)
        settings = service_settings(
            world_url,
            tmp_path,
            tokens=[],
            tls_cert=str(server.cert),
            tls_key=str(server.key),
            client_ca=str(gateways.path),
        )
        with running(settings) as handle:
            assert handle.url.startswith("https://127.0.0.1:")
            with gateway(handle, token=None, verify=client_context(servers.path, good)) as gw:
                assert gw.ask("alice").status_code == 200
                assert gw.ask("bruno").json()["rule"] == "order"
            for client in (None, forged):
                with (
                    gateway(handle, token=None, verify=client_context(servers.path, client)) as gw,
                    pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
                ):
                    gw.ask("alice")
        assert [line["person"] for line in edge_lines(settings)] == ["bruno"]

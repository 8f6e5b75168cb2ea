"""``gatekeeper temporal-auth``: the tokens it issues verify against the key set it keeps.

Verification is PyJWT's (an independent JOSE implementation), with the checks Temporal's claim
mapper makes: ES256 only, the key named by ``kid`` in the key set, ``aud``, ``exp``/``nbf``,
and the ``permissions`` claim. The commands run through the real entry point.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml

from gatekeeper import temporal_auth
from tests.deploy.cli import admin_command

AUDIENCE = temporal_auth.DEFAULT_AUDIENCE
ROOT = Path(__file__).resolve().parents[2]


def gatekeeper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))}
    return subprocess.run(
        admin_command("temporal-auth", *args),
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def verify(token: str, jwks_file: Path, audience: str = AUDIENCE) -> dict[str, Any]:
    """What the server does with a token: find the key by ``kid`` in the key set, check the
    ES256 signature, the audience and the times, and require what the claim mapper reads."""
    key_set = jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text()))
    kid = jwt.get_unverified_header(token)["kid"]
    matching = [k for k in key_set.keys if k.key_id == kid]
    if not matching:
        raise LookupError(f"no key {kid} in the key set")
    claims: dict[str, Any] = jwt.decode(
        token,
        key=matching[0].key,
        algorithms=["ES256"],
        audience=audience,
        options={"require": ["exp", "nbf", "iat", "sub", "aud"]},
    )
    return claims


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A signing key made by ``keygen`` and the key set it was added to."""
    key, jwks = tmp_path / "private" / "signing.pem", tmp_path / "jwks" / "jwks.json"
    result = gatekeeper("keygen", "--key", str(key), "--jwks", str(jwks))
    assert result.returncode == 0, result.stderr
    return key, jwks


class TestKeygen:
    """The signing key stays private; its public half, and only it, goes into the key set."""

    def test_private_key_and_key_set(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        assert mode(key) == 0o600
        [entry] = json.loads(jwks.read_text())["keys"]
        assert entry["kty"] == "EC" and entry["crv"] == "P-256" and entry["alg"] == "ES256"
        assert "d" not in entry, "the private scalar must not be published"
        assert entry["kid"] == temporal_auth.key_id(temporal_auth.load_signing_key(key))

    def test_never_overwrites_a_key(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        before_key, before_set = key.read_bytes(), jwks.read_text()
        result = gatekeeper("keygen", "--key", str(key), "--jwks", str(jwks))
        assert result.returncode == 3
        assert "exists already" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert key.read_bytes() == before_key and jwks.read_text() == before_set

    def test_a_second_key_joins_the_first_and_retire_removes_one(
        self, keys: tuple[Path, Path], tmp_path: Path
    ) -> None:
        """Rotation: the new key is trusted beside the old until the old is retired; then
        tokens the old key signed no longer find their key."""
        old_key, jwks = keys
        old_token = temporal_auth.issue_token(
            temporal_auth.load_signing_key(old_key),
            subject="worker-1",
            role="writer",
            namespaces=["default"],
            ttl=timedelta(hours=1),
            now=datetime.now(UTC),
        )
        new_key = tmp_path / "private" / "signing-2.pem"
        assert gatekeeper("keygen", "--key", str(new_key), "--jwks", str(jwks)).returncode == 0
        assert len(json.loads(jwks.read_text())["keys"]) == 2
        assert verify(old_token, jwks)["sub"] == "worker-1"

        old_kid = temporal_auth.key_id(temporal_auth.load_signing_key(old_key))
        # A kid is base64url: one in 64 starts with "-", which only `--` keeps from being an option.
        result = gatekeeper("retire", "--jwks", str(jwks), "--", old_kid)
        assert result.returncode == 0, result.stderr
        [left] = json.loads(jwks.read_text())["keys"]
        assert left["kid"] == temporal_auth.key_id(temporal_auth.load_signing_key(new_key))
        with pytest.raises(LookupError):
            verify(old_token, jwks)

        again = gatekeeper("retire", "--jwks", str(jwks), "--", old_kid)
        assert again.returncode == 2 and "has no key" in again.stderr

    def test_a_kid_starting_with_a_dash_is_retired_after_double_dash(self, tmp_path: Path) -> None:
        # A thumbprint is base64url, so about one key in 64 has a kid like "-2Sh…".
        key = temporal_auth.generate_signing_key()
        while not temporal_auth.key_id(key).startswith("-"):
            key = temporal_auth.generate_signing_key()
        jwks = tmp_path / "jwks.json"
        kid = temporal_auth.add_key(jwks, key.public_key())
        result = gatekeeper("retire", "--jwks", str(jwks), "--", kid)
        assert result.returncode == 0, result.stderr
        assert json.loads(jwks.read_text())["keys"] == []


class TestIssue:
    """A token carries who it is for, the role on each namespace as Temporal reads it, the
    audience and a bounded lifetime, and verifies against the key set."""

    @pytest.mark.parametrize(
        ("role", "permission"), [("writer", "write"), ("reader", "read"), ("admin", "admin")]
    )
    def test_roles_become_temporal_permissions(
        self, keys: tuple[Path, Path], tmp_path: Path, role: str, permission: str
    ) -> None:
        key, jwks = keys
        out = tmp_path / "tokens" / f"{role}.jwt"
        result = gatekeeper(
            "issue", "--key", str(key), "--subject", f"s-{role}", "--role", role,
            "--namespace", "releases", "--namespace", "staging", "--ttl", "90m",
            "--out", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == "", "a token written to a file is not printed"
        assert mode(out) == 0o600
        claims = verify(out.read_text().strip(), jwks)
        assert claims["sub"] == f"s-{role}"
        assert claims["permissions"] == [f"releases:{permission}", f"staging:{permission}"]
        # Valid from a minute back (clock skew between this machine and the server).
        skew = int(temporal_auth.CLOCK_SKEW.total_seconds())
        assert claims["exp"] - claims["iat"] == 90 * 60 + skew
        assert claims["nbf"] == claims["iat"]
        assert 0 <= datetime.now(UTC).timestamp() - skew - claims["iat"] < 30

    def test_namespace_and_audience_from_the_environment(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        result = gatekeeper(
            "issue", "--key", str(key), "--subject", "lena.fischer", "--role", "reader",
            env={"TEMPORAL_NAMESPACE": "gatekeeper-prod", "TEMPORAL_JWT_AUDIENCE": "temporal-prod"},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        claims = verify(token, jwks, audience="temporal-prod")
        assert claims["permissions"] == ["gatekeeper-prod:read"]
        with pytest.raises(jwt.InvalidAudienceError):
            verify(token, jwks)

    def test_each_token_is_distinct(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        args = ("issue", "--key", str(key), "--subject", "w", "--role", "writer")
        first, second = gatekeeper(*args).stdout.strip(), gatekeeper(*args).stdout.strip()
        assert verify(first, jwks)["jti"] != verify(second, jwks)["jti"]


class TestRefusedTokens:
    """Tokens the server must refuse fail verification: expired, not yet valid, signed by a
    key outside the set, signed by another key under a trusted key's id, or altered."""

    def _issue(self, key: Path, **changes: Any) -> str:
        fields: dict[str, Any] = {
            "subject": "lena.fischer",
            "role": "reader",
            "namespaces": ["default"],
            "ttl": timedelta(hours=1),
            "now": datetime.now(UTC),
        }
        fields.update(changes)
        return temporal_auth.issue_token(temporal_auth.load_signing_key(key), **fields)

    def test_expired(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        token = self._issue(key, now=datetime.now(UTC) - timedelta(hours=2))
        with pytest.raises(jwt.ExpiredSignatureError):
            verify(token, jwks)

    def test_not_yet_valid(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        token = self._issue(key, now=datetime.now(UTC) + timedelta(hours=1))
        with pytest.raises(jwt.ImmatureSignatureError):
            verify(token, jwks)

    def test_key_outside_the_set(self, keys: tuple[Path, Path], tmp_path: Path) -> None:
        _, jwks = keys
        stranger = tmp_path / "stranger.pem"
        temporal_auth.write_private_key(stranger, temporal_auth.generate_signing_key())
        with pytest.raises(LookupError):
            verify(self._issue(stranger), jwks)

    def test_other_key_under_a_trusted_kid(self, keys: tuple[Path, Path], tmp_path: Path) -> None:
        key, jwks = keys
        stranger = tmp_path / "stranger.pem"
        temporal_auth.write_private_key(stranger, temporal_auth.generate_signing_key())
        forged = self._issue(stranger, role="writer")
        trusted_kid = temporal_auth.key_id(temporal_auth.load_signing_key(key))
        header, payload, signature = forged.split(".")
        forged_header = json.loads(jwt.utils.base64url_decode(header))
        forged_header["kid"] = trusted_kid
        relabelled = ".".join(
            [
                jwt.utils.base64url_encode(json.dumps(forged_header).encode()).decode(),
                payload,
                signature,
            ]
        )
        with pytest.raises(jwt.InvalidSignatureError):
            verify(relabelled, jwks)

    def test_reader_promoted_to_writer_by_editing_the_claims(self, keys: tuple[Path, Path]) -> None:
        key, jwks = keys
        header, payload, signature = self._issue(key).split(".")
        claims = json.loads(jwt.utils.base64url_decode(payload))
        claims["permissions"] = ["default:write"]
        edited = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        with pytest.raises(jwt.InvalidSignatureError):
            verify(f"{header}.{edited}.{signature}", jwks)


class TestRefusedRequests:
    """What would widen access by mistake is refused in one line, and nothing is written."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--role", "superuser"), "--role must be one of reader, writer, admin"),
            (("--role", "admin", "--namespace", "temporal-system"), "cluster-wide scope"),
            (("--role", "reader", "--namespace", "a:b"), "is not a Temporal namespace name"),
            (("--role", "writer", "--ttl", "91d"), "at most 90d"),
            (("--role", "writer", "--ttl", "0h"), "longer than zero"),
            (("--role", "writer", "--ttl", "forever"), "--ttl must look like"),
            (("--role", "writer", "--subject", "a b"), "must be a short identifier"),
        ],
    )
    def test_refused(
        self, keys: tuple[Path, Path], tmp_path: Path, args: tuple[str, ...], message: str
    ) -> None:
        key, _ = keys
        out = tmp_path / "t.jwt"
        if "--subject" not in args:
            args = (*args, "--subject", "someone")
        result = gatekeeper("issue", "--key", str(key), *args, "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()

    def test_not_a_signing_key(self, tmp_path: Path) -> None:
        bogus = tmp_path / "bogus.pem"
        bogus.write_text("not a key\n")
        result = gatekeeper("issue", "--key", str(bogus), "--subject", "w", "--role", "writer")
        assert result.returncode == 3
        assert "is not an unencrypted PEM private key" in result.stderr
        assert result.stdout == ""


class TestDocumentedSetup:
    """The commands docs/deployment.md gives before the first ``docker compose up`` make a key
    set and tokens the stack accepts: its audience, its namespace, writer for the worker and
    admin for the setup job, at the paths its secrets name."""

    def test_quick_start_tokens_fit_the_stack(self, tmp_path: Path) -> None:
        doc = (ROOT / "docs" / "deployment.md").read_text()
        section = doc[doc.index("## The compose stack") : doc.index("docker compose up -d")]
        commands = [
            line.replace("\\\n", " ")
            for line in re.findall(
                r"^\$ (gatekeeper temporal-auth (?:[^\n]*\\\n)*[^\n]*)$", section, re.M
            )
        ]
        assert [c.split()[2] for c in commands] == ["keygen", "issue", "issue"]
        key = tmp_path / "temporal-jwt.pem"
        for command in commands:
            argv = shlex.split(command.replace("$KEY", str(key)))[2:]
            argv = [a.replace("deploy/temporal/", f"{tmp_path}/deploy/temporal/") for a in argv]
            result = gatekeeper(*argv)
            assert result.returncode == 0, (command, result.stderr)

        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        jwks = tmp_path / "deploy/temporal/jwks/jwks.json"
        audience = compose["services"]["temporal"]["environment"]["TEMPORAL_JWT_AUDIENCE"]
        assert audience == "${TEMPORAL_JWT_AUDIENCE:-" + AUDIENCE + "}"
        namespace = compose["x-gatekeeper-client"]["TEMPORAL_NAMESPACE"]
        assert namespace == "${TEMPORAL_NAMESPACE:-default}"
        expected = {"worker": "default:write", "setup": "default:admin"}
        for service in ("worker", "gatekeeper-setup"):
            [mount] = [v for v in compose["services"][service]["volumes"] if "tokens" in v]
            directory = mount.rsplit(":", 2)[0].split("}", 1)[1].lstrip("/")
            token_file = compose["x-gatekeeper-client"]["GATEKEEPER_TEMPORAL_TOKEN_FILE"]
            token = tmp_path / "deploy/temporal/tokens" / directory / Path(token_file).name
            claims = verify(token.read_text().strip(), jwks)
            assert claims["permissions"] == [expected[claims["sub"]]], service
            assert directory == claims["sub"]

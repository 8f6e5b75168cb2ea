"""The bearer token a Gatekeeper process sends to Temporal (``GATEKEEPER_TEMPORAL_TOKEN_FILE``)
is a credential: whoever holds a writer's token can reset releases on a cluster that authorizes
with JWTs. It is read from its file, sent, and never printed: not by a command that works with it
at debug level, not in the refusal of a file that holds something else.

The dev server authorizes nobody; what the server does with tokens is the stack's configuration
(tests/deploy/test_temporal_auth.py).
"""

from __future__ import annotations

from pathlib import Path

from gatekeeper import redact
from tests.security.process import environment, gatekeeper
from tests.workflows.conftest import Harness

#: Shaped like a JWT, recognisable anywhere it might leak.
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJTZW50aW5lbC05YjQxIn0.U2VudGluZWwtU2lnbmF0dXJlLTdjMmU"


class TestTokenIsNeverPrinted:
    """A command that connects with the token says nothing of it, even at debug level in JSON;
    a token file holding more than a token is refused in one line that names the file only."""

    async def test_command_using_the_token(self, harness: Harness, tmp_path: Path) -> None:
        redact.forget_all()
        token_file = tmp_path / "token.jwt"
        token_file.write_text(TOKEN + "\n")
        env = environment(
            harness,
            GATEKEEPER_TEMPORAL_TOKEN_FILE=str(token_file),
            TEMPORAL_TLS="false",
            GATEKEEPER_LOG_LEVEL="DEBUG",
            GATEKEEPER_LOG_FORMAT="json",
        )

        ran = await gatekeeper("health", env=env)

        assert ran.code == 0, ran.stderr
        assert "healthy" in ran.stdout
        assert TOKEN not in ran.stdout + ran.stderr

    async def test_refused_token_file_is_not_quoted(self, harness: Harness, tmp_path: Path) -> None:
        token_file = tmp_path / "token.jwt"
        token_file.write_text(f"Bearer {TOKEN}\n")
        env = environment(
            harness, GATEKEEPER_TEMPORAL_TOKEN_FILE=str(token_file), TEMPORAL_TLS="false"
        )

        ran = await gatekeeper("health", env=env)

        assert ran.code == 3, ran.stderr
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1
        assert str(token_file) in lines[0] and "without 'Bearer'" in lines[0]
        assert TOKEN not in ran.stdout + ran.stderr
        assert "Traceback" not in ran.stderr

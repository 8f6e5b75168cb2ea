"""What one access service runs with: ``[access_service]`` resolved against the command line and
the environment, and the callers it accepts (tokens are read here and kept only as digests)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gatekeeper import redact
from gatekeeper.config import AccessServiceConfig
from gatekeeper.egress import is_loopback
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings

#: Shortest caller token accepted: a gateway token must resist guessing.
MIN_TOKEN_CHARS = 16
#: Longest caller token accepted (a header line, not a document).
MAX_TOKEN_CHARS = 512
#: At most this many tokens in a tokens file (a few during a rotation).
MAX_TOKENS = 64


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _check_token(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"access service: {where}: too short a token (under {MIN_TOKEN_CHARS} characters); "
            "use a random one (e.g. `openssl rand -hex 24`)"
        )
    if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
        raise ConfigError(
            f"access service: {where}: a token must be at most {MAX_TOKEN_CHARS} printable "
            "ASCII characters"
        )


def read_tokens_file(path: Path) -> list[str]:
    """The tokens of a tokens file: one per line; blank lines and ``#`` comments are skipped.

    Raises:
        ConfigError: (one line, never a token) the file cannot be read, holds none, too many,
            or a token too short or not printable ASCII.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8"
        raise ConfigError(f"access service: cannot read tokens_file {path} ({reason})") from None
    tokens: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.strip()
        if not token or token.startswith("#"):
            continue
        _check_token(token, f"tokens_file {path} line {number}")
        tokens.append(token)
    if not tokens:
        raise ConfigError(f"access service: tokens_file {path} holds no token")
    if len(tokens) > MAX_TOKENS:
        raise ConfigError(f"access service: tokens_file {path} holds more than {MAX_TOKENS} tokens")
    return tokens


class CallerAuth:
    """The gateway tokens the service accepts, as sha256 digests.

    :meth:`accepts` compares a presented token's digest with every accepted digest with
    :func:`hmac.compare_digest` (all of them, whichever matches), so the time taken says nothing
    about which token, or how much of one, was right. The tokens file is read again when it
    changes (:meth:`reload_if_changed`), so a rotation needs no restart; a file that turns
    unreadable or invalid keeps the tokens read last.
    """

    def __init__(self, tokens_file: Path | None, env_token: str | None) -> None:
        self._file = tokens_file
        self._env_token = env_token
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._digests: tuple[bytes, ...] = ()
        if env_token is not None:
            _check_token(env_token, "the variable token_env names")
        self._load()

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    @property
    def count(self) -> int:
        return len(self._digests)

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self._file is None:
            return None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _load(self) -> None:
        tokens: list[str] = []
        stamp = self._file_stamp()
        if self._file is not None:
            tokens += read_tokens_file(self._file)
        if self._env_token is not None:
            tokens.append(self._env_token)
        redact.remember(*tokens)
        self._digests = tuple(_digest(t.encode("ascii")) for t in tokens)
        self._stamp = stamp

    def reload_if_changed(self) -> bool:
        """Read the tokens file again if it changed since it was read; ``True`` if it did.

        Raises:
            ConfigError: the changed file is unreadable or invalid (the old tokens stay).
        """
        if self._file is None:
            return False
        with self._lock:
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return False
            try:
                self._load()
            except ConfigError:
                self._stamp = stamp  # said once per change, not on every poll
                raise
            return True

    def accepts(self, presented: bytes | None) -> bool:
        """Whether ``presented`` (the header's raw value) is one of the accepted tokens."""
        digest = _digest(presented if presented is not None else b"")
        accepted = False
        for expected in self._digests:
            accepted |= hmac.compare_digest(digest, expected)
        return accepted and presented is not None


@dataclass(frozen=True)
class ServiceSettings:
    """Everything :class:`gatekeeper.access_service.AccessService` needs.

    Attributes:
        registry_url: the access registry (the same one the worker writes).
        host, port: where to listen (port 0: any free port, printed when ready).
        auth: the caller tokens (may hold none when mTLS or ``insecure_no_caller_auth``).
        tls_cert, tls_key: the server's certificate and key (PEM), or ``None`` for plain HTTP.
        client_ca: CA certificates (PEM) a caller's certificate must chain to (mTLS).
        staleness: deny everything once the view is not confirmed current for this long (s).
        poll: seconds between change-feed polls.
        allow_sample: the share of allows written to the edge log (every deny is written).
        log_file: the edge log (JSON lines), or ``None`` for standard error.
        insecure_no_caller_auth: no caller authentication at all (loopback only).
    """

    registry_url: str = field(repr=False)
    host: str
    port: int
    auth: CallerAuth = field(repr=False)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    staleness: float = 2.0
    poll: float = 0.1
    allow_sample: float = 0.01
    log_file: Path | None = None
    insecure_no_caller_auth: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    @property
    def mtls(self) -> bool:
        return self.client_ca is not None

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        insecure_no_caller_auth: bool = False,
        section: AccessServiceConfig | None = None,
    ) -> ServiceSettings:
        """The service's settings from ``[access_service]`` (or ``section``), the command line
        (``host``, ``port`` override the section's) and the environment.

        Raises:
            ConfigError: (one line) no caller authentication (no token, no mTLS) unless
                ``insecure_no_caller_auth`` on a loopback host; a token variable unset; a
                tokens file unreadable, empty or holding a weak token; a TLS file missing.
        """
        config = section if section is not None else settings.config.access_service
        where = config.host if host is None else host
        env: Mapping[str, str] = settings.env
        env_token: str | None = None
        if config.token_env is not None:
            env_token = env.get(config.token_env, "").strip()
            if not env_token:
                raise ConfigError(
                    f"access service: the variable {config.token_env} (token_env) is unset or empty"
                )
        for name in ("tls_cert", "tls_key", "client_ca"):
            path: Path | None = getattr(config, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"access service: {name} {path} does not exist")
        auth = CallerAuth(config.tokens_file, env_token)
        if not auth.enabled and config.client_ca is None:
            if not insecure_no_caller_auth:
                raise ConfigError(
                    "access service: no caller authentication: set tokens_file or token_env "
                    "(or client_ca for mTLS) in [access_service]; --insecure-no-caller-auth "
                    "works on a loopback host only"
                )
            if not is_loopback(where):
                raise ConfigError(
                    f"access service: refusing to answer unauthenticated callers on {where!r}: "
                    "--insecure-no-caller-auth works on a loopback host only; set tokens_file "
                    "or token_env (or client_ca for mTLS) in [access_service]"
                )
        return cls(
            registry_url=settings.effective_registry_url,
            host=where,
            port=config.port if port is None else port,
            auth=auth,
            tls_cert=config.tls_cert,
            tls_key=config.tls_key,
            client_ca=config.client_ca,
            staleness=config.staleness,
            poll=config.poll,
            allow_sample=config.allow_sample,
            log_file=config.log_file,
            insecure_no_caller_auth=(
                insecure_no_caller_auth and not auth.enabled and config.client_ca is None
            ),
        )

"""What one console process runs with: the ``[console]`` section, resolved against where it
listens and the environment (secrets are read here, once, and never logged)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from temporalio.client import Client

from gatekeeper.config import ConsoleConfig
from gatekeeper.egress import is_loopback
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8400
#: The smallest session secret accepted from the environment (characters).
MIN_SECRET_LENGTH = 32
#: How long a sign-in lasts (seconds): a working day.
SESSION_MAX_AGE = 12 * 3600


def _dev_on_loopback(dev_sign_in: bool, host: str) -> None:
    if dev_sign_in and not is_loopback(host):
        raise ConfigError(
            f"console: dev_sign_in works only while the console listens on loopback "
            f"(127.0.0.1, ::1, localhost), not on {host!r}; configure OIDC sign-in"
        )


@dataclass(frozen=True)
class OidcSettings:
    """The OpenID Connect provider people sign in with (discovery from ``issuer``)."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class ConsoleSettings:
    """Everything :func:`gatekeeper.console.create_app` needs.

    Attributes:
        gatekeeper: the process settings (task queue, registry, data directory, config).
        host, port: where the console listens (``url`` defaults to them).
        url: the public base URL, without a trailing slash.
        session_secret: signs the session cookie.
        oidc: the provider, or ``None`` (no OIDC sign-in).
        dev_sign_in: anyone may sign in as any roster person; only on loopback.
        client: a Temporal client to use (``gatekeeper dev``, tests); else one is connected
            when the app starts, from the environment, like the CLI's.
    """

    gatekeeper: Settings
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    url: str = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    session_secret: str = field(default="", repr=False)
    oidc: OidcSettings | None = None
    dev_sign_in: bool = False
    client: Client | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _dev_on_loopback(self.dev_sign_in, self.host)
        if len(self.session_secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"console: the session secret must be at least {MIN_SECRET_LENGTH} characters"
            )
        if self.oidc is None and not self.dev_sign_in:
            raise ConfigError(
                "console: no way to sign in: set oidc_issuer, oidc_client_id and "
                "oidc_client_secret_env in [console] (or dev_sign_in = true on loopback)"
            )

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies are ``Secure``: always, except for a plain-http loopback console."""
        parsed = urlsplit(self.url)
        return not (parsed.scheme == "http" and is_loopback(parsed.hostname))

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying party id: the console URL's host."""
        return urlsplit(self.url).hostname or "localhost"

    @property
    def config(self) -> ConsoleConfig:
        return self.gatekeeper.config.console

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        dev_sign_in: bool | None = None,
        client: Client | None = None,
    ) -> ConsoleSettings:
        """The console's settings from ``[console]`` and the environment.

        ``dev_sign_in`` overrides the section's (``gatekeeper dev`` turns it on). Without
        ``session_secret_env`` a random secret is made per process (sign-ins end with it),
        which only a development console may do.

        Raises:
            ConfigError: (one line) a variable the section names is unset or too short, dev
                sign-in off loopback, or no way to sign in.
        """
        section = settings.config.console
        dev = section.dev_sign_in if dev_sign_in is None else dev_sign_in
        _dev_on_loopback(dev, host)
        env = settings.env
        if section.session_secret_env:
            secret = env.get(section.session_secret_env, "")
            if len(secret) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"console: the variable {section.session_secret_env} (session_secret_env) "
                    f"must hold a secret of at least {MIN_SECRET_LENGTH} characters"
                )
        elif dev:
            secret = secrets.token_urlsafe(32)
        else:
            raise ConfigError(
                "console: set session_secret_env in [console] to the name of a variable holding "
                f"a random secret of at least {MIN_SECRET_LENGTH} characters"
            )
        oidc = None
        if section.oidc_issuer and section.oidc_client_id and section.oidc_client_secret_env:
            client_secret = env.get(section.oidc_client_secret_env, "")
            if not client_secret:
                raise ConfigError(
                    f"console: the variable {section.oidc_client_secret_env} "
                    "(oidc_client_secret_env) is not set"
                )
            oidc = OidcSettings(section.oidc_issuer, section.oidc_client_id, client_secret)
        if section.url is None and not is_loopback(host):
            raise ConfigError(
                f"console: set url in [console] to where people reach the console (e.g. "
                f"https://gatekeeper.example.com): it listens on {host!r}, beyond this machine, "
                "and sign-in returns to that URL"
            )
        # Browsers make passkeys only for host names, never for an IP address: a console on
        # loopback is reached as localhost.
        shown = "localhost" if is_loopback(host) else (f"[{host}]" if ":" in host else host)
        url = section.url or f"http://{shown}:{port}"
        return cls(
            gatekeeper=settings,
            host=host,
            port=port,
            url=url,
            session_secret=secret,
            oidc=oidc,
            dev_sign_in=dev,
            client=client,
        )

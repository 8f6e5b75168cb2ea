"""Secrets kept out of every error message and log line.

Two nets, applied to finished text (an error's message, a rendered log line):

- patterns: the password in a URL's userinfo (``postgresql://gk:***@db/gk``), bearer and basic
  credentials, and ``name=value`` / ``"name": "value"`` pairs whose name says secret (password,
  token, secret, api key, codec key, credentials...);
- known values: the process remembers each secret it was configured with (:func:`remember`,
  :func:`remember_environment`: the registry URL's password, codec keys, the codec server token,
  every environment variable whose name says secret) and masks them wherever they appear, even
  in a third-party message our patterns do not recognise.

Pure text functions plus one process-wide set of values; no I/O.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

#: What a secret is replaced with.
MASK = "***"
#: Shorter values are not remembered: masking "1" or "yes" everywhere would garble messages.
MIN_SECRET_LENGTH = 6

#: Environment variable names whose values are secrets.
_SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CODEC_KEYS?|CREDENTIALS?"
    r"|_AUTH\b|AUTHORIZATION)",
    re.IGNORECASE,
)
#: Names that say where a secret is (a file, a variable), not what it is.
_NOT_SECRET_SUFFIXES = ("_FILE", "_PATH", "_DIR", "_ENV", "_NAME", "_ID")
_URL_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"<>]*):(?P<secret>[^\s'\"<>]*)@"
)
_AUTH_SCHEME = re.compile(
    r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=\-]{6,})", re.IGNORECASE
)
# ``name=value``, ``name:value`` and JSON's ``"name": "value"``, where the name ends with a secret
# word (``secret_env: NAME`` names a variable, it holds none). ``name: words`` is left alone: it is
# how our own messages name a field ("GATEKEEPER_CODEC_KEYS: expected 'id:<base64 key>'").
_KEY_VALUE = re.compile(
    r"(?P<head>\b[\w.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key"
    r"|private[_\-]?key|codec[_\-]?keys?|credentials?)"
    r"(?:\s*=\s*['\"]?|:(?=[^\s'\"])|['\"]\s*:\s*['\"]))"
    r"(?P<secret>[^\s'\",;&}\]]{6,})",
    re.IGNORECASE,
)

_known: set[str] = set()
_lock = threading.Lock()


def remember(*values: str | None) -> None:
    """Mask these values (each at least :data:`MIN_SECRET_LENGTH` long) from now on."""
    with _lock:
        for value in values:
            if value and len(value.strip()) >= MIN_SECRET_LENGTH:
                _known.add(value.strip())


def remember_url(url: str | None) -> None:
    """Remember the password in ``url``'s userinfo (as written and percent-decoded)."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password is None:
        match = _URL_USERINFO.search(url)
        password = match.group("secret") if match else None
    if password:
        remember(password, unquote(password))


def remember_environment(env: Mapping[str, str]) -> None:
    """Remember every variable whose name says secret, and every URL password in the values."""
    for name, value in env.items():
        if _SECRET_NAME.search(name) and not name.upper().endswith(_NOT_SECRET_SUFFIXES):
            remember(value, *_list_parts(value))
        elif "://" in value and "@" in value:
            remember_url(value)


def forget_all() -> None:
    """Forget every remembered value (tests)."""
    with _lock:
        _known.clear()


def mask(text: str) -> str:
    """``text`` with every secret the patterns find or the process remembers replaced by ***."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('head')}{MASK}", text)
    return _KEY_VALUE.sub(_mask_pair, text)


def _mask_pair(match: re.Match[str]) -> str:
    return f"{match.group('head')}{MASK}"


def _list_parts(value: str) -> Iterable[str]:
    """The pieces of ``id:secret,id:secret`` lists (codec keys) and ``user:password`` pairs."""
    for item in value.split(","):
        yield item
        if ":" in item:
            yield item.split(":", 1)[1]

"""Payload encryption: an AES-GCM payload codec with key ids, so keys can be rotated.

With a codec configured, every payload a Gatekeeper client or worker sends to Temporal (workflow
inputs and results, update arguments, activity inputs and results, summaries, failure messages)
is encrypted before it leaves the process; the server stores only ciphertext. Each encrypted
payload names the key that sealed it, so rotation is adding a key and making it active: new
payloads use the active key, old ones still open with the key they name.

Search attributes are *not* payloads: they stay readable so operators can filter releases.

With keys configured, a payload that is *not* encrypted is refused: otherwise anyone who can
reach the namespace without the keys could start a release or send an update in plain JSON and
the worker would act on it. A payload that does not decrypt (it names a key this process lacks,
or fails authentication) is refused too. ``decode`` never raises for either: an exception in a
codec fails the whole workflow task, so one forged update would wedge a release (every later
update is refused while its task is failed). Instead the codec hands the SDK a marker payload
(:data:`REFUSED_ENCODING`, the original data dropped) and :class:`RefusalConverter` raises when
that argument is converted, which touches only what the payload stood for:

* plaintext: :class:`PlaintextRefused`, a non-retryable ``plaintext_refused`` application
  error. A plaintext update is rejected before its validator (nothing recorded); a plaintext
  start input fails that workflow at once; a plaintext query argument fails the query.
* undecryptable: :class:`UndecryptablePayload`, a :class:`~gatekeeper.errors.ConfigError` and
  deliberately *not* an application error. An update carrying one is rejected; anywhere else
  (an activity result sealed with a key this worker lacks: a rotation step skipped) the
  workflow task fails and is retried, so the release resumes once the key is configured
  instead of failing for good.

``GATEKEEPER_CODEC_ALLOW_PLAINTEXT=1`` lets plaintext through while a deployment migrates to
encryption (releases started before, and payloads sent while it was on, still replay); turn it
off once those releases have closed.

Payload compression (:mod:`gatekeeper.compression`) joins this codec in one chain
(:func:`payload_codec`): compress, then encrypt; decrypt, then inflate. A compressed payload
that is not encrypted is plaintext here, and refused like any other.

Keys come from the settings (``GATEKEEPER_CODEC_KEYS="k1:<base64>,k2:<base64>"``, optionally
``GATEKEEPER_CODEC_KEY_FILE`` with one ``id:<base64>`` per line, and ``GATEKEEPER_CODEC_ACTIVE``
naming the key that encrypts; by default the last one listed). They are read when a client is
built, never at import time.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import EncodingPayloadConverter, PayloadCodec

from gatekeeper.codec_refusals import (
    ALLOW_PLAINTEXT_VARIABLE,
    PLAINTEXT,
    PLAINTEXT_REFUSED,
    REFUSAL,
    REFUSED_DETAIL,
    REFUSED_ENCODING,
    UNDECRYPTABLE,
    UNDECRYPTABLE_PAYLOAD,
    PlaintextRefused,
    UndecryptablePayload,
    marker,
    printable,
    refusal,
)
from gatekeeper.compression import CodecChain, CompressionCodec
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings

#: ``metadata["encoding"]`` of an encrypted payload; the Temporal UI shows it for undecoded data.
ENCODING = b"binary/encrypted"
#: Metadata key naming the key that sealed a payload.
KEY_ID = "encryption-key-id"
#: AES-GCM's standard nonce size; a fresh random nonce per payload.
NONCE_BYTES = 12
#: AES-128, -192 or -256; ``generate_key`` makes 256-bit keys.
KEY_SIZES = (16, 24, 32)

__all__ = [
    "ALLOW_PLAINTEXT_VARIABLE",
    "ENCODING",
    "KEY_ID",
    "PLAINTEXT_REFUSED",
    "REFUSAL",
    "REFUSED_DETAIL",
    "REFUSED_ENCODING",
    "UNDECRYPTABLE",
    "UNDECRYPTABLE_PAYLOAD",
    "EncryptedPayloadConverter",
    "EncryptionCodec",
    "Keyring",
    "PlaintextRefused",
    "RefusalConverter",
    "UndecryptablePayload",
    "codec_from_settings",
    "generate_key",
    "keyring_from_settings",
    "parse_keys",
    "payload_codec",
    "refusal",
]

_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Keyring:
    """Every key a process may decrypt with, and the one it encrypts with.

    Attributes:
        keys: key id to raw key bytes.
        active: the id of the key new payloads are encrypted with.
    """

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("the payload codec needs at least one key")
        for key_id, key in self.keys.items():
            if not _KEY_ID_PATTERN.match(key_id):
                raise ConfigError(
                    f"codec key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
                )
            if len(key) not in KEY_SIZES:
                raise ConfigError(
                    f"codec key {key_id} is {len(key)} bytes; AES-GCM needs 16, 24 or 32"
                )
        if self.active not in self.keys:
            raise ConfigError(
                f"active codec key {self.active!r} is not among the keys "
                f"({', '.join(sorted(self.keys))})"
            )

    @property
    def ids(self) -> list[str]:
        return sorted(self.keys)

    def rotated(self, key_id: str, key: bytes) -> Keyring:
        """A keyring with ``key_id`` added (or replaced) and made active; old keys still decrypt."""
        return Keyring(keys={**self.keys, key_id: key}, active=key_id)


def parse_keys(text: str, source: str) -> dict[str, bytes]:
    """Parse ``id:<base64>`` entries separated by commas or newlines (``#`` starts a comment).

    Raises:
        ConfigError: an entry is malformed, a key is not valid base64, or an id repeats.
    """
    keys: dict[str, bytes] = {}
    for raw in re.split(r"[,\n]", text):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id or not encoded.strip():
            raise ConfigError(f"{source}: expected 'id:<base64 key>', got {_redact(entry)!r}")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as err:
            raise ConfigError(f"{source}: key {key_id} is not valid base64") from err
        if key_id in keys and keys[key_id] != key:
            raise ConfigError(f"{source}: key id {key_id} is listed twice with different keys")
        keys[key_id] = key
    return keys


def keyring_from_settings(settings: Settings) -> Keyring | None:
    """The keyring the settings describe, or ``None`` when no codec key is configured.

    Keys from ``codec_key_file`` come first, then ``codec_keys``; the active key is
    ``codec_active_key`` or else the last key listed.

    Raises:
        ConfigError: the keys are malformed, the key file cannot be read, or the active key is
            unknown.
    """
    ordered: dict[str, bytes] = {}
    sources: list[tuple[str, str]] = []
    if settings.codec_key_file is not None:
        try:
            text = settings.codec_key_file.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(
                f"cannot read codec key file {settings.codec_key_file}: {err.strerror}"
            ) from err
        sources.append((text, str(settings.codec_key_file)))
    if settings.codec_keys:
        sources.append((settings.codec_keys, "GATEKEEPER_CODEC_KEYS"))
    for text, source in sources:
        for key_id, key in parse_keys(text, source).items():
            if key_id in ordered and ordered[key_id] != key:
                raise ConfigError(f"codec key {key_id} has different values in different sources")
            ordered.pop(key_id, None)
            ordered[key_id] = key
    if not ordered:
        if settings.codec_active_key:
            raise ConfigError("GATEKEEPER_CODEC_ACTIVE is set but no codec keys are configured")
        return None
    active = settings.codec_active_key or list(ordered)[-1]
    return Keyring(keys=ordered, active=active)


def generate_key() -> str:
    """A new random 256-bit key, base64-encoded, for ``GATEKEEPER_CODEC_KEYS``."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class EncryptionCodec(PayloadCodec):
    """Encrypts payloads with the keyring's active key; decrypts with whichever key they name.

    ``decode`` replaces a payload it refuses with a :data:`REFUSED_ENCODING` marker (see the
    module docstring): one that is not encrypted (unless ``allow_plaintext``), or, unless
    ``strict``, one that does not decrypt. ``strict`` raises instead, for the codec server,
    which answers its caller rather than a workflow.
    """

    def __init__(
        self, keyring: Keyring, *, allow_plaintext: bool = False, strict: bool = False
    ) -> None:
        self.keyring = keyring
        self.allow_plaintext = allow_plaintext
        self.strict = strict
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}

    def for_display(self) -> EncryptionCodec:
        """The codec for the codec server: plaintext shown as it is, decryption errors raised."""
        return EncryptionCodec(self.keyring, allow_plaintext=True, strict=True)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        """Seal one payload (metadata and data) with the active key."""
        key_id = self.keyring.active
        nonce = os.urandom(NONCE_BYTES)
        # The key id is authenticated too, so a payload cannot be relabelled to another key.
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(), key_id.encode("ascii")
        )
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: key_id.encode("ascii")},
            data=nonce + sealed,
        )

    def _open(self, payload: Payload) -> Payload:
        encoding = payload.metadata.get("encoding")
        if encoding == REFUSED_ENCODING:  # already a marker (or sent as one): refused either way
            return payload
        if encoding != ENCODING:
            if self.allow_plaintext:
                return payload
            return marker(PLAINTEXT, encoding or b"none")
        if self.strict:
            return self.decrypt(payload)
        try:
            return self.decrypt(payload)
        except ConfigError as err:
            return marker(UNDECRYPTABLE, str(err).encode("utf-8"))

    def decrypt(self, payload: Payload) -> Payload:
        """Open one encrypted payload.

        Raises:
            ConfigError: the payload is not encrypted, names a key this keyring lacks, or does
                not open with that key (wrong key material, or the data was altered).
        """
        if payload.metadata.get("encoding") != ENCODING:
            raise ConfigError("payload is not encrypted")
        key_id = payload.metadata.get(KEY_ID, b"").decode("ascii", errors="replace")
        key_id = printable(key_id[:64])
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ConfigError(
                f"payload is encrypted with codec key {key_id!r}, which is not configured "
                f"(known: {', '.join(self.keyring.ids)}); keep retired keys for decryption"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode("ascii"))
            return Payload.FromString(plain)
        except (InvalidTag, ValueError, DecodeError) as err:
            raise ConfigError(
                f"payload does not decrypt with codec key {key_id!r}: wrong key or altered data"
            ) from err


class RefusalConverter(EncodingPayloadConverter):
    """Raises :func:`refusal`'s error when the codec's refusal marker is converted.

    Encodes nothing. The SDK does not wrap an :class:`ApplicationError` raised while converting
    arguments: a plaintext refusal reaches the update's, workflow's or query's caller as it is.
    """

    @property
    def encoding(self) -> str:
        return REFUSED_ENCODING.decode("ascii")

    def to_payload(self, value: object) -> Payload | None:
        del value
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> object:
        del type_hint
        raise refusal(payload)


class EncryptedPayloadConverter(PydanticPayloadConverter):
    """The pydantic payload converter, plus :class:`RefusalConverter` (last: it never encodes,
    it only recognises the codec's refusal marker)."""

    def __init__(self) -> None:
        super().__init__()
        self._set_converters(*self.converters.values(), RefusalConverter())


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    """The payload codec the settings configure, or ``None`` for plain JSON payloads.

    Plaintext payloads are refused unless ``settings.codec_allow_plaintext`` (the migration
    switch) is set.
    """
    keyring = keyring_from_settings(settings)
    if keyring is None:
        return None
    return EncryptionCodec(keyring, allow_plaintext=settings.codec_allow_plaintext)


def payload_codec(settings: Settings) -> CodecChain:
    """The codec every Gatekeeper client and worker uses: compression (which always inflates,
    and deflates large payloads when ``settings.payload_compression`` is on), then encryption
    when codec keys are configured.

    Raises:
        ConfigError: the codec keys are malformed.
    """
    compression = CompressionCodec(compress=settings.payload_compression != "off")
    encryption = codec_from_settings(settings)
    return CodecChain([compression] if encryption is None else [compression, encryption])


def _redact(entry: str) -> str:
    key_id, _, rest = entry.partition(":")
    return f"{key_id}:…" if rest else key_id

"""What the payload codecs refuse, as a marker payload and the error it stands for.

Kept apart from :mod:`gatekeeper.codec` (keys, AES-GCM) so that code running in the workflow
sandbox can recognise a refused payload with nothing heavier than Temporal's own modules: an
update whose parameter is a ``RawValue`` receives the marker untouched and raises
:func:`refusal`'s error itself (see :func:`gatekeeper.models.payloads.parse_payload`).
"""

from __future__ import annotations

from temporalio.api.common.v1 import Payload

from gatekeeper.errors import ConfigError, InputError
from gatekeeper.failures import Refused

#: ``metadata["encoding"]`` of the marker a refused payload is replaced with.
REFUSED_ENCODING = b"binary/gatekeeper-refused"
#: Marker metadata: why it was refused (:data:`PLAINTEXT`, :data:`UNDECRYPTABLE` or
#: :data:`UNREADABLE_COMPRESSED`).
REFUSAL = "gatekeeper-refusal"
#: Marker metadata: the refused payload's own encoding, or the decryption error.
REFUSED_DETAIL = "gatekeeper-refusal-detail"
PLAINTEXT = b"plaintext"
UNDECRYPTABLE = b"undecryptable"
#: A compressed payload that is malformed or inflates beyond the bound (:mod:`gatekeeper.compression`).
UNREADABLE_COMPRESSED = b"compressed"
#: ``ApplicationError.type`` of a plaintext refusal.
PLAINTEXT_REFUSED = "plaintext_refused"
#: ``ApplicationError.type`` of an update refused because its payload does not decrypt.
UNDECRYPTABLE_PAYLOAD = "undecryptable_payload"
#: ``ApplicationError.type`` of a refused compressed payload.
COMPRESSED_PAYLOAD_REFUSED = "compressed_payload_refused"
#: The migration switch named in the refusal.
ALLOW_PLAINTEXT_VARIABLE = "GATEKEEPER_CODEC_ALLOW_PLAINTEXT"


class PlaintextRefused(Refused, ConfigError):
    """A plaintext payload arrived while encryption is on.

    A :class:`~gatekeeper.failures.Refused` for Temporal (an application error of type
    ``plaintext_refused``, non-retryable, no stack trace: it rejects the update, fails the
    workflow or the query), and a :class:`ConfigError` for a Gatekeeper command that meets one
    (a worker without the keys answered it): one line, exit 3.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, PLAINTEXT_REFUSED)

    def __str__(self) -> str:
        return self.message


class UndecryptablePayload(ConfigError):
    """A payload that does not decrypt: its key is not configured here, or it was altered.

    Not an application error on purpose: in a workflow it rejects an update carrying it, and
    fails (and retries) the workflow task for anything else, so a missing key is fixed by
    configuring it, not by losing the release.
    """


class CompressedPayloadRefused(Refused, InputError):
    """A compressed payload that is not valid zlib data, holds no plain payload, or inflates
    beyond the bound (a zip bomb).

    Like :class:`PlaintextRefused` a non-retryable application error (type
    ``compressed_payload_refused``, no stack trace): the payload is never valid later, so it
    rejects the update carrying it, fails the workflow it started, or fails the query; and an
    :class:`~gatekeeper.errors.InputError` for a Gatekeeper command that meets one.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, COMPRESSED_PAYLOAD_REFUSED)

    def __str__(self) -> str:
        return self.message


def is_refused(payload: Payload) -> bool:
    """Whether ``payload`` is the codec's refusal marker."""
    return payload.metadata.get("encoding") == REFUSED_ENCODING


def marker(reason: bytes, detail: bytes) -> Payload:
    """What a refused payload becomes: why, and a short detail; its data is dropped."""
    return Payload(
        metadata={"encoding": REFUSED_ENCODING, REFUSAL: reason, REFUSED_DETAIL: detail[:300]}
    )


def refusal(
    payload: Payload,
) -> PlaintextRefused | UndecryptablePayload | CompressedPayloadRefused:
    """The error a refusal marker stands for (one line)."""
    detail = printable(payload.metadata.get(REFUSED_DETAIL, b"").decode("utf-8", "replace"))
    reason = payload.metadata.get(REFUSAL)
    if reason == UNDECRYPTABLE:
        return UndecryptablePayload(detail or "payload does not decrypt")
    if reason == UNREADABLE_COMPRESSED:
        return CompressedPayloadRefused(
            f"refused a compressed payload: {detail or 'it does not inflate'}"
        )
    return PlaintextRefused(
        f"refused a payload that is not encrypted (encoding {detail[:64] or 'none'!r}): payload "
        "encryption is on, so send it through a client that has the codec keys (the Temporal "
        f"CLI and UI through the codec server); {ALLOW_PLAINTEXT_VARIABLE}=1 accepts plaintext "
        "only while migrating"
    )


def update_refusal(payload: Payload) -> Refused:
    """The refusal of an update whose argument is a refusal marker: always a ``Refused``
    (rejected in the validator, one line, no trace), whichever way the payload was refused."""
    error = refusal(payload)
    if isinstance(error, Refused):
        return error
    return Refused(str(error), UNDECRYPTABLE_PAYLOAD)


def printable(text: str) -> str:
    """``text`` with control characters replaced by ``?``: one line, nothing a terminal obeys."""
    return "".join(c if c.isprintable() else "?" for c in text)

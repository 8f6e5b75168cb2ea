"""Payload compression: an opt-in zlib payload codec, and the chain it forms with encryption.

A release's history is mostly JSON: the start input, audit entries, notification text, the
policy snapshot, status. With ``GATEKEEPER_PAYLOAD_COMPRESSION=zlib`` every payload larger than
:data:`MIN_BYTES` is compressed before it leaves the process, when that saves bytes; smaller
ones (update results, refusals, summaries) stay plain JSON, so the raw ``temporal`` CLI and the
Temporal UI show them as before. Off by default.

Decoding is always on, whatever the setting: a client or worker that does not compress reads
what one that does compressed, so processes with different settings interoperate and turning
compression off never strands a history. The compressed payload is the whole original payload
(metadata and data) deflated, under ``metadata["encoding"] = binary/zlib``
(:data:`ENCODING`).

With encryption on, one chain (:class:`CodecChain`) compresses then encrypts, and decrypts then
inflates; so a compressed payload that is *not* encrypted is plaintext like any other and is
refused (see :mod:`gatekeeper.codec`).

Every compressed payload is bounded: one that is not valid zlib data, has trailing bytes, does
not hold a plain payload (another compressed, encrypted or refusal-marker payload), or inflates
beyond :data:`MAX_INFLATED_BYTES` (Temporal's 2 MiB payload limit: a zip bomb) is never inflated
further. ``decode`` does not raise for it (an exception in a codec fails the workflow task and
wedges the release): it hands the SDK the codec's refusal marker
(:data:`~gatekeeper.codec_refusals.UNREADABLE_COMPRESSED`), which
:class:`~gatekeeper.codec.RefusalConverter` turns into a one-line, non-retryable
``compressed_payload_refused`` error when that argument is converted: an update carrying one is
rejected before its validator (nothing recorded), a start input fails that workflow, a query
argument fails the query. Only payloads no larger than the bound are compressed, so everything
this codec encodes decodes again.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from gatekeeper.codec_refusals import REFUSED_ENCODING, UNREADABLE_COMPRESSED, marker
from gatekeeper.errors import InputError

#: ``metadata["encoding"]`` of a compressed payload; the Temporal UI shows it for undecoded data.
ENCODING = b"binary/zlib"
#: Payloads up to this size (serialized, metadata included) are never compressed.
MIN_BYTES = 1024
#: The most a compressed payload may inflate to: Temporal's default payload size limit (2 MiB).
MAX_INFLATED_BYTES = 2 * 1024 * 1024
#: zlib's level: 6 is its default, most of level 9's ratio on JSON at a fraction of the CPU.
LEVEL = 6
#: The encodings a compressed payload may not hold: ours (nested compression, ciphertext, a
#: marker), so one inflation always yields a plain payload.
_NOT_INSIDE = frozenset({ENCODING, b"binary/encrypted", REFUSED_ENCODING})


class CompressionCodec(PayloadCodec):
    """Deflates payloads larger than ``min_bytes`` (when ``compress``); always inflates.

    ``decode`` replaces a compressed payload it cannot read with a refusal marker (see the
    module docstring); ``strict`` raises :class:`~gatekeeper.errors.InputError` instead, for the
    codec server, which answers its caller rather than a workflow.
    """

    def __init__(
        self,
        *,
        compress: bool,
        min_bytes: int = MIN_BYTES,
        max_inflated: int = MAX_INFLATED_BYTES,
        strict: bool = False,
    ) -> None:
        self.compress = compress
        self.min_bytes = min_bytes
        self.max_inflated = max_inflated
        self.strict = strict

    def for_display(self) -> CompressionCodec:
        """The codec for the codec server: an unreadable payload is an error it answers with."""
        return CompressionCodec(
            compress=self.compress,
            min_bytes=self.min_bytes,
            max_inflated=self.max_inflated,
            strict=True,
        )

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not self.compress:
            return list(payloads)
        return [self.deflate(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def deflate(self, payload: Payload) -> Payload:
        """``payload`` compressed, or ``payload`` itself when it is small, too large to inflate
        again within the bound, or does not get smaller."""
        size = payload.ByteSize()
        if size <= self.min_bytes or size > self.max_inflated:
            return payload
        if payload.metadata.get("encoding") in _NOT_INSIDE:
            return payload
        compressed = Payload(
            metadata={"encoding": ENCODING},
            data=zlib.compress(payload.SerializeToString(), LEVEL),
        )
        return compressed if compressed.ByteSize() < size else payload

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        try:
            return self.inflate(payload)
        except InputError as err:
            if self.strict:
                raise
            return marker(UNREADABLE_COMPRESSED, str(err).encode("utf-8"))

    def inflate(self, payload: Payload) -> Payload:
        """The payload a compressed one holds, inflating at most ``max_inflated`` bytes.

        Raises:
            InputError: the data is not one complete zlib stream, inflates beyond the bound,
                or does not hold a plain payload.
        """
        inflater = zlib.decompressobj()
        try:
            plain = inflater.decompress(payload.data, self.max_inflated + 1)
        except zlib.error as err:
            raise InputError(f"it is not valid zlib data ({err})") from err
        if len(plain) > self.max_inflated or inflater.unconsumed_tail:
            raise InputError(
                f"it inflates beyond {self.max_inflated // 1024} KiB, the payload size limit"
            )
        if not inflater.eof:
            raise InputError("its zlib data is truncated")
        if inflater.unused_data:
            raise InputError("it has bytes after its zlib data")
        try:
            inner = Payload.FromString(plain)
        except DecodeError as err:
            raise InputError("it does not hold a payload") from err
        if inner.metadata.get("encoding") in _NOT_INSIDE:
            raise InputError("it holds another encoded payload, not a plain one")
        return inner


@runtime_checkable
class Displayable(Protocol):
    """A codec with a variant for the codec server (``for_display``)."""

    def for_display(self) -> PayloadCodec: ...


class CodecChain(PayloadCodec):
    """Codecs applied in order when encoding and in reverse when decoding.

    ``CodecChain([compression, encryption])`` compresses then encrypts; it decrypts then
    inflates.
    """

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = tuple(codecs)

    def for_display(self) -> CodecChain:
        """Each codec's display variant (see the codec server)."""
        return CodecChain(
            [c.for_display() if isinstance(c, Displayable) else c for c in self.codecs]
        )

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        result = list(payloads)
        for codec in self.codecs:
            result = await codec.encode(result)
        return result

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        result = list(payloads)
        for codec in reversed(self.codecs):
            result = await codec.decode(result)
        return result

"""Payload compression: the zlib codec, its bounds, its chain with encryption, its setting, and
the codec server inflating for the UI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from gatekeeper.client import data_converter
from gatekeeper.codec import ENCODING as ENCRYPTED
from gatekeeper.codec import EncryptionCodec, PlaintextRefused, payload_codec
from gatekeeper.codec_refusals import (
    COMPRESSED_PAYLOAD_REFUSED,
    REFUSAL,
    REFUSED_ENCODING,
    UNREADABLE_COMPRESSED,
    CompressedPayloadRefused,
    refusal,
    update_refusal,
)
from gatekeeper.codec_server import create_app, serve
from gatekeeper.compression import (
    ENCODING,
    MAX_INFLATED_BYTES,
    MIN_BYTES,
    CodecChain,
    CompressionCodec,
)
from gatekeeper.errors import ConfigError, InputError
from gatekeeper.failures import Refused
from gatekeeper.models import DecisionRequest
from gatekeeper.models.payloads import parse_payload
from gatekeeper.settings import Settings
from tests.codec.keys import codec, env_keys
from tests.codec.test_codec_server import body, parse
from tests.deploy.cli import admin_command
from tests.factories import spec
from tests.test_replay import HISTORIES, history_of
from tests.workers.helpers import free_ports
from workflows.registry import ALL_WORKFLOWS

ZLIB = CompressionCodec(compress=True)
READER = CompressionCodec(compress=False)


def json_payload(size: int) -> Payload:
    """A JSON payload of about ``size`` bytes, compressible as audit text is."""
    text = json.dumps({"audit": ["approved by sam.safety for aurora"] * (size // 36)})
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def compressed(inner: bytes) -> Payload:
    return Payload(metadata={"encoding": ENCODING}, data=inner)


def bomb(inflated: int = MAX_INFLATED_BYTES + 1) -> Payload:
    """A payload-shaped zlib stream inflating to ``inflated`` bytes (a few KiB on the wire)."""
    inner = Payload(metadata={"encoding": b"json/plain"}, data=b"0" * inflated)
    return compressed(zlib.compress(inner.SerializeToString(), 9))


async def refused(codec: CompressionCodec | CodecChain, payload: Payload) -> str:
    """``decode`` marks ``payload`` (never raises), and the mark converts to a one-line,
    non-retryable ``compressed_payload_refused``; returns its message."""
    [marker] = await codec.decode([payload])
    assert marker.metadata["encoding"] == REFUSED_ENCODING and not marker.data
    assert marker.metadata[REFUSAL] == UNREADABLE_COMPRESSED
    error = refusal(marker)
    assert isinstance(error, CompressedPayloadRefused) and isinstance(error, Refused)
    assert error.type == COMPRESSED_PAYLOAD_REFUSED and error.non_retryable
    assert "\n" not in error.message and error.message.startswith("refused a compressed payload")
    assert update_refusal(marker) is not None
    return error.message


class TestCompression:
    """Large payloads are deflated when that saves bytes; small ones stay plain JSON; every
    compressed payload inflates back to the same payload."""

    async def test_large_payload_round_trips(self) -> None:
        original = json_payload(8 * 1024)
        [out] = await ZLIB.encode([original])
        assert out.metadata["encoding"] == ENCODING
        assert out.ByteSize() < original.ByteSize() // 4
        assert await ZLIB.decode([out]) == [original]

    async def test_small_payload_stays_plain(self) -> None:
        small = json_payload(MIN_BYTES - 100)
        assert small.ByteSize() <= MIN_BYTES
        assert await ZLIB.encode([small]) == [small]

    async def test_incompressible_payload_stays_plain(self) -> None:
        noise = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(4096))
        assert noise.ByteSize() > MIN_BYTES
        assert await ZLIB.encode([noise]) == [noise]

    async def test_payload_beyond_the_bound_is_never_compressed(self) -> None:
        """So everything the codec compresses inflates within the bound again."""
        huge = Payload(metadata={"encoding": b"json/plain"}, data=b"0" * MAX_INFLATED_BYTES)
        assert await ZLIB.encode([huge]) == [huge]

    async def test_off_sends_plain_but_reads_compressed(self) -> None:
        original = json_payload(8 * 1024)
        assert await READER.encode([original]) == [original]
        assert await READER.decode(await ZLIB.encode([original])) == [original]


class TestBounds:
    """A compressed payload that is malformed or inflates beyond 2 MiB is never inflated
    further: ``decode`` hands back a refusal marker instead of raising (a raise would fail the
    workflow task and wedge the release); the codec server's strict codec raises InputError."""

    async def test_zip_bomb(self) -> None:
        payload = bomb()
        assert payload.ByteSize() < 8 * 1024
        message = await refused(READER, payload)
        assert "inflates beyond 2048 KiB" in message
        with pytest.raises(InputError, match="inflates beyond"):
            await READER.for_display().decode([payload])

    async def test_bound_is_inclusive(self) -> None:
        """A payload of exactly the bound (Temporal's limit) is read."""
        inner = Payload(metadata={"encoding": b"json/plain"}, data=b"0" * (MAX_INFLATED_BYTES - 64))
        inner.data += b"0" * (MAX_INFLATED_BYTES - inner.ByteSize())
        assert inner.ByteSize() == MAX_INFLATED_BYTES
        [out] = await READER.decode([compressed(zlib.compress(inner.SerializeToString()))])
        assert out == inner

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"not zlib at all", "not valid zlib data"),
            (zlib.compress(json_payload(4096).SerializeToString())[:-9], "truncated"),
            (zlib.compress(json_payload(4096).SerializeToString()) + b"x", "bytes after"),
            (zlib.compress(b"\xff\xff\xff"), "does not hold a payload"),
            (b"", "truncated"),
        ],
        ids=["garbage", "truncated", "trailing", "not-a-payload", "empty"],
    )
    async def test_malformed(self, data: bytes, message: str) -> None:
        assert message in await refused(READER, compressed(data))

    @pytest.mark.parametrize(
        "encoding", [ENCODING, ENCRYPTED, REFUSED_ENCODING], ids=["zlib", "encrypted", "marker"]
    )
    async def test_nested_encoding_refused(self, encoding: bytes) -> None:
        """One inflation always yields a plain payload: no zlib in zlib (a bomb's multiplier),
        no ciphertext or forged marker smuggled inside."""
        inner = Payload(metadata={"encoding": encoding}, data=b"x" * 100)
        message = await refused(READER, compressed(zlib.compress(inner.SerializeToString())))
        assert "another encoded payload" in message

    async def test_update_refusal_reaches_the_validator(self) -> None:
        [marker] = await READER.decode([bomb()])
        with pytest.raises(CompressedPayloadRefused, match="inflates beyond"):
            parse_payload(DecisionRequest, RawValue(marker), "approve")


class TestChainWithEncryption:
    """With keys: compress then encrypt; decrypt then inflate; a compressed payload that is not
    encrypted is plaintext and refused."""

    async def test_compressed_inside_the_ciphertext(self) -> None:
        chain = payload_codec(Settings(codec_keys=env_keys(), payload_compression="zlib"))
        original = json_payload(8 * 1024)
        [sealed] = await chain.encode([original])
        assert sealed.metadata["encoding"] == ENCRYPTED
        assert sealed.ByteSize() < original.ByteSize() // 4  # compressed before encryption
        [opened] = await codec().decode([sealed])
        assert opened.metadata["encoding"] == ENCODING
        assert await chain.decode([sealed]) == [original]

    async def test_compressed_plaintext_refused(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        [plain_zlib] = await ZLIB.encode([json_payload(8 * 1024)])
        with pytest.raises(PlaintextRefused, match="encoding 'binary/zlib'"):
            await converter.decode([plain_zlib], [dict])

    async def test_migration_switch_reads_compressed_plaintext(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys(), codec_allow_plaintext=True))
        original = {"audit": ["x" * 40] * 100}
        [plain_zlib] = await data_converter(Settings(payload_compression="zlib")).encode([original])
        assert plain_zlib.metadata["encoding"] == ENCODING
        assert await converter.decode([plain_zlib], [dict]) == [original]

    async def test_bomb_inside_ciphertext_refused(self) -> None:
        """A key holder's bomb is bounded too."""
        [sealed] = await codec().encode([bomb()])
        chain = CodecChain([READER, EncryptionCodec(codec().keyring)])
        assert "inflates beyond" in await refused(chain, sealed)


class TestMixedSettings:
    """Clients and workers with different settings read each other's payloads."""

    @pytest.mark.parametrize(
        ("writer", "reader"),
        [("zlib", "off"), ("off", "zlib"), ("zlib", "zlib")],
    )
    @pytest.mark.parametrize("keys", [False, True], ids=["plain", "encrypted"])
    async def test_round_trip(self, writer: str, reader: str, keys: bool) -> None:
        extra = {"codec_keys": env_keys()} if keys else {}
        release = spec("r-mixed")
        big = {"notes": ["policy snapshot line " * 4] * 200}
        sent = await data_converter(Settings(payload_compression=writer, **extra)).encode(  # type: ignore[arg-type]
            [release, big]
        )
        got = await data_converter(Settings(payload_compression=reader, **extra)).decode(  # type: ignore[arg-type]
            sent, [type(release), dict]
        )
        assert got == [release, big]

    async def test_converter_raises_the_refusal_for_a_bomb(self) -> None:
        converter = data_converter(Settings())
        with pytest.raises(ApplicationError) as caught:
            await converter.decode([bomb()], [dict])
        assert caught.value.type == COMPRESSED_PAYLOAD_REFUSED


class TestSetting:
    """``GATEKEEPER_PAYLOAD_COMPRESSION``: zlib or off (the default); anything else is a
    one-line configuration error."""

    def test_default_off(self) -> None:
        assert Settings.from_env({}).payload_compression == "off"

    @pytest.mark.parametrize(
        ("raw", "parsed"),
        [("zlib", "zlib"), ("ZLIB ", "zlib"), ("off", "off"), ("0", "off"), ("", "off")],
    )
    def test_values(self, raw: str, parsed: str) -> None:
        env = {"GATEKEEPER_PAYLOAD_COMPRESSION": raw}
        assert Settings.from_env(env).payload_compression == parsed

    def test_unknown_value(self) -> None:
        with pytest.raises(ConfigError, match="GATEKEEPER_PAYLOAD_COMPRESSION must be zlib or off"):
            Settings.from_env({"GATEKEEPER_PAYLOAD_COMPRESSION": "gzip"})


@pytest_asyncio.fixture(loop_scope="session")
async def zlib_server() -> AsyncIterator[str]:
    chain = payload_codec(Settings(codec_keys=env_keys(), payload_compression="zlib"))
    async with serve(create_app(chain), "127.0.0.1", 0) as url:
        yield url


class TestCodecServer:
    """The codec server inflates compressed payloads for the UI and the CLI, encrypted or not,
    and answers a bomb with 422 instead of inflating it."""

    async def test_decodes_compressed_and_encrypted(self, zlib_server: str) -> None:
        original = json_payload(8 * 1024)
        chain = payload_codec(Settings(codec_keys=env_keys(), payload_compression="zlib"))
        [sealed] = await chain.encode([original])
        [plain_zlib] = await ZLIB.encode([original])
        async with httpx.AsyncClient(base_url=zlib_server) as http:
            response = await http.post("/decode", json=body(sealed, plain_zlib))
        assert response.status_code == 200
        assert parse(response.json()) == [original, original]

    async def test_bomb_is_422(self, zlib_server: str) -> None:
        async with httpx.AsyncClient(base_url=zlib_server) as http:
            response = await http.post("/decode", json=body(bomb()))
        assert response.status_code == 422
        assert "inflates beyond" in response.json()["error"]


class TestPinnedHistories:
    """Every history recorded before compression existed replays on a worker that compresses
    (its converter reads plain payloads as they are, and would compress only new ones)."""

    @pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
    async def test_replays_with_compression_on(self, path: Path) -> None:
        converter = data_converter(Settings(payload_compression="zlib"))
        replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=converter)
        result = await replayer.replay_workflow(history_of(path))
        assert result.replay_failure is None


class TestCodecServerCommand:
    """``gatekeeper codec-server`` with compression on and no keys serves the UI the inflated
    payloads (it refuses to start only with neither keys nor compression)."""

    async def test_serves_compressed_without_keys(self) -> None:
        [port] = free_ports(1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_CODEC")} | {
            "GATEKEEPER_PAYLOAD_COMPRESSION": "zlib"
        }
        process = await asyncio.create_subprocess_exec(
            *admin_command("codec-server", "--port", str(port), "--json"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            text = b""
            while not text.rstrip().endswith(b"}"):  # one (indented) JSON object
                text += await asyncio.wait_for(process.stdout.readline(), 30)
            announced = json.loads(text)
            assert (announced["keys"], announced["compression"]) == ([], "zlib")
            original = json_payload(8 * 1024)
            [sent] = await ZLIB.encode([original])
            async with httpx.AsyncClient(base_url=announced["url"]) as http:
                response = await http.post("/decode", json=body(sent))
                assert parse(response.json()) == [original]
                response = await http.post("/decode", json=body(bomb()))
                assert response.status_code == 422
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 15) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

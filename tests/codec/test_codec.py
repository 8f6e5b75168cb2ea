"""The AES-GCM payload codec, its keyring, and the data converter that carries it."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from gatekeeper import redact
from gatekeeper.client import data_converter
from gatekeeper.codec import (
    ENCODING,
    KEY_ID,
    PLAINTEXT_REFUSED,
    REFUSAL,
    REFUSED_ENCODING,
    UNDECRYPTABLE,
    EncryptionCodec,
    Keyring,
    PlaintextRefused,
    UndecryptablePayload,
    codec_from_settings,
    generate_key,
    keyring_from_settings,
    refusal,
)
from gatekeeper.codec_refusals import UNDECRYPTABLE_PAYLOAD, update_refusal
from gatekeeper.errors import ConfigError
from gatekeeper.failures import RefusalFailureConverter, Refused
from gatekeeper.models import DecisionRequest
from gatekeeper.models.payloads import parse_payload
from gatekeeper.settings import Settings
from tests.codec.keys import K1, K2, b64, codec, env_keys
from tests.factories import spec

SECRET = b'{"model":"aurora-secret"}'


def raised(error: ApplicationError) -> ApplicationError:
    """``error`` with a real traceback, as a workflow raising it would have."""
    try:
        raise error
    except ApplicationError as caught:
        return caught


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


class TestKeyring:
    """Keys come from the settings (variable and file); the last listed encrypts unless one is
    named; malformed keys are refused with a message that never shows key material."""

    def test_no_keys_means_no_codec(self) -> None:
        assert keyring_from_settings(Settings()) is None
        assert codec_from_settings(Settings()) is None

    def test_keys_from_environment(self) -> None:
        settings = Settings.from_env({"GATEKEEPER_CODEC_KEYS": env_keys()})
        keyring = keyring_from_settings(settings)
        assert keyring is not None
        assert keyring.ids == ["k1", "k2"] and keyring.active == "k2"
        assert keyring.keys["k1"] == K1
        assert "k1:" not in repr(settings), "key material must not appear in the settings' repr"

    def test_active_key_named(self) -> None:
        settings = Settings.from_env(
            {"GATEKEEPER_CODEC_KEYS": env_keys(), "GATEKEEPER_CODEC_ACTIVE": "k1"}
        )
        keyring = keyring_from_settings(settings)
        assert keyring is not None and keyring.active == "k1"

    def test_key_file_merged_with_environment(self, tmp_path: Path) -> None:
        key_file = tmp_path / "codec.keys"
        key_file.write_text(f"# retired\nold:{b64(K1)}\n\n")
        settings = Settings.from_env(
            {"GATEKEEPER_CODEC_KEY_FILE": str(key_file), "GATEKEEPER_CODEC_KEYS": f"new:{b64(K2)}"}
        )
        keyring = keyring_from_settings(settings)
        assert keyring is not None
        assert keyring.ids == ["new", "old"] and keyring.active == "new"

    @pytest.mark.parametrize(
        ("keys", "active", "message"),
        [
            ("k1", None, "expected 'id:<base64 key>'"),
            ("k1:not base64!", None, "not valid base64"),
            (f"k1:{b64(b'short')}", None, "AES-GCM needs 16, 24 or 32"),
            (f"bad id:{b64(K1)}", None, "must be 1-64 letters"),
            (f"k1:{b64(K1)},k1:{b64(K2)}", None, "listed twice"),
            (f"k1:{b64(K1)}", "k9", "active codec key 'k9'"),
            ("", "k1", "no codec keys are configured"),
        ],
    )
    def test_malformed_keys_refused(self, keys: str, active: str | None, message: str) -> None:
        env = {"GATEKEEPER_CODEC_KEYS": keys}
        if active:
            env["GATEKEEPER_CODEC_ACTIVE"] = active
        with pytest.raises(ConfigError, match=message) as caught:
            keyring_from_settings(Settings.from_env(env))
        assert b64(K2) not in str(caught.value)

    def test_unreadable_key_file(self, tmp_path: Path) -> None:
        settings = Settings(codec_key_file=tmp_path / "missing.keys")
        with pytest.raises(ConfigError, match="cannot read codec key file"):
            keyring_from_settings(settings)

    def test_generated_keys_are_fresh_256_bit_keys(self) -> None:
        first, second = generate_key(), generate_key()
        assert first != second
        keyring = keyring_from_settings(Settings(codec_keys=f"g:{first}"))
        assert keyring is not None and len(keyring.keys["g"]) == 32


class TestEncryption:
    """Payloads are sealed with the active key and name it; decoding opens them with the key
    they name, passes plain payloads through, and refuses unknown keys and altered data."""

    async def test_round_trip(self) -> None:
        c = codec()
        [sealed] = await c.encode([plain()])
        assert sealed.metadata["encoding"] == ENCODING
        assert sealed.metadata[KEY_ID] == b"k2"
        assert b"aurora" not in sealed.SerializeToString()
        [opened] = await c.decode([sealed])
        assert opened == plain()

    async def test_fresh_nonce_per_payload(self) -> None:
        c = codec()
        first, second = await c.encode([plain(), plain()])
        assert first.data != second.data

    async def test_plain_payloads_refused(self) -> None:
        [marker] = await codec().decode([plain()])
        assert marker.metadata["encoding"] == REFUSED_ENCODING
        assert not marker.data, "the refused plaintext is dropped, not handed on"
        error = refusal(marker)
        assert isinstance(error, PlaintextRefused) and isinstance(error, ConfigError)
        assert error.type == PLAINTEXT_REFUSED and error.non_retryable
        assert "'json/plain'" in error.message and "\n" not in error.message
        assert "GATEKEEPER_CODEC_ALLOW_PLAINTEXT=1" in error.message

    async def test_plain_payloads_pass_through_while_migrating(self) -> None:
        migrating = EncryptionCodec(codec().keyring, allow_plaintext=True)
        assert await migrating.decode([plain()]) == [plain()]
        [sealed] = await migrating.encode([plain()])
        assert sealed.metadata["encoding"] == ENCODING, "migrating still encrypts what it sends"

    def test_migration_switch_in_settings(self) -> None:
        env = {"GATEKEEPER_CODEC_KEYS": env_keys()}
        refusing = codec_from_settings(Settings.from_env(env))
        assert refusing is not None and not refusing.allow_plaintext
        for value in ("1", "true", "YES", "on"):
            switched = Settings.from_env({**env, "GATEKEEPER_CODEC_ALLOW_PLAINTEXT": value})
            migrating = codec_from_settings(switched)
            assert migrating is not None and migrating.allow_plaintext
        with pytest.raises(ConfigError, match="GATEKEEPER_CODEC_ALLOW_PLAINTEXT must be 1 or 0"):
            Settings.from_env({**env, "GATEKEEPER_CODEC_ALLOW_PLAINTEXT": "maybe"})

    async def test_rotation_keeps_old_payloads_readable(self) -> None:
        before = EncryptionCodec(Keyring(keys={"k1": K1}, active="k1"))
        [old] = await before.encode([plain()])
        after = EncryptionCodec(before.keyring.rotated("k2", K2))
        [new] = await after.encode([plain()])
        assert new.metadata[KEY_ID] == b"k2"
        assert await after.decode([old, new]) == [plain(), plain()]

    async def test_retired_key_removed_is_named(self) -> None:
        [old] = await codec(active="k1").encode([plain()])
        only_new = EncryptionCodec(Keyring(keys={"k2": K2}, active="k2"))
        await assert_undecryptable(only_new, old, "codec key 'k1', which is not configured")

    async def test_altered_data_refused(self) -> None:
        [sealed] = await codec().encode([plain()])
        tampered = Payload()
        tampered.CopyFrom(sealed)
        tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
        await assert_undecryptable(codec(), tampered, "wrong key or altered data")

    async def test_relabelled_key_refused(self) -> None:
        [sealed] = await codec().encode([plain()])
        relabelled = Payload()
        relabelled.CopyFrom(sealed)
        relabelled.metadata[KEY_ID] = b"k1"
        await assert_undecryptable(codec(), relabelled, "wrong key or altered data")

    async def test_truncated_data_refused(self) -> None:
        forged = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k2"}, data=b"short")
        await assert_undecryptable(codec(), forged, "wrong key or altered data")


class TestUpdateRefusal:
    """An update's argument that the codec refused is a ``Refused`` either way: rejected in the
    validator in one line, typed, never retried, without a stack trace."""

    async def test_plaintext(self) -> None:
        [marker] = await codec().decode([plain()])
        error = update_refusal(marker)
        assert isinstance(error, Refused) and isinstance(error, PlaintextRefused)
        assert error.type == PLAINTEXT_REFUSED and error.non_retryable

    async def test_undecryptable(self) -> None:
        forged = Payload(metadata={"encoding": ENCODING, KEY_ID: b"k9"}, data=b"x" * 40)
        [marker] = await codec().decode([forged])
        error = update_refusal(marker)
        assert isinstance(error, Refused)
        assert error.type == UNDECRYPTABLE_PAYLOAD and error.non_retryable
        assert "codec key 'k9', which is not configured" in error.message

    def test_parse_payload_raises_it(self) -> None:
        marker = Payload(metadata={"encoding": REFUSED_ENCODING, REFUSAL: b"plaintext"})
        with pytest.raises(PlaintextRefused):
            parse_payload(DecisionRequest, RawValue(marker), "approve")


async def assert_undecryptable(c: EncryptionCodec, payload: Payload, message: str) -> None:
    """``decode`` marks it (a workflow task must not fail on it); converting the mark raises
    a ConfigError that is not an ApplicationError; the strict codec raises at once."""
    [marker] = await c.decode([payload])
    assert marker.metadata["encoding"] == REFUSED_ENCODING
    assert marker.metadata[REFUSAL] == UNDECRYPTABLE and not marker.data
    error = refusal(marker)
    assert isinstance(error, UndecryptablePayload) and not isinstance(error, ApplicationError)
    assert message in str(error)
    with pytest.raises(ConfigError, match=message):
        await EncryptionCodec(c.keyring, strict=True).decode([payload])


class TestDataConverter:
    """Without keys the converter is plain pydantic JSON (its codec only inflates compressed
    payloads); with keys it encrypts every payload, and failure messages move into encrypted
    attributes. Either way a refusal has no trace."""

    async def test_plain_without_keys(self) -> None:
        converter = data_converter(Settings())
        assert issubclass(
            converter.payload_converter_class, pydantic_data_converter.payload_converter_class
        )
        assert type(converter.failure_converter) is RefusalFailureConverter
        release = spec("r-plain")
        # Payloads leave as pydantic's JSON, byte for byte: the codec changes nothing.
        assert await converter.encode([release]) == (
            pydantic_data_converter.payload_converter.to_payloads([release])
        )

    async def test_refusal_without_trace_plain(self) -> None:
        converter = data_converter(Settings())
        refusal, crash = Failure(), Failure()
        await converter.encode_failure(
            raised(Refused("no: one line", "separation_of_duties")), refusal
        )
        await converter.encode_failure(raised(ApplicationError("bug", type="Bug")), crash)
        assert (refusal.message, refusal.stack_trace) == ("no: one line", "")
        assert refusal.application_failure_info.non_retryable
        assert "test_codec.py" in crash.stack_trace  # other failures keep what debugging needs

    async def test_secrets_are_masked_through_the_cause_chain(self) -> None:
        """An adapter error quoting a database URL (as SQLAlchemy's do) reaches history, with
        its cause, without the password; a value the process was configured with is masked even
        where no pattern recognises it."""
        redact.remember("hunter2-configured-token")
        try:
            try:
                raise RuntimeError(
                    "could not connect to postgresql://gk:s3cr3t-pw@db:5432/gk "
                    "(token hunter2-configured-token)"
                )
            except RuntimeError as cause:
                raise ApplicationError("registry unavailable", type="RegistryError") from cause
        except ApplicationError as caught:
            error = caught
        failure = Failure()
        await data_converter(Settings()).encode_failure(error, failure)
        text = str(failure)
        assert "s3cr3t-pw" not in text and "hunter2-configured-token" not in text
        assert "postgresql://gk:***@db:5432/gk" in failure.cause.message
        assert "test_codec.py" in failure.stack_trace  # the trace itself is kept

    async def test_refusal_without_trace_encrypted(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        failure = Failure()
        await converter.encode_failure(raised(Refused("secret refusal", "bad_input")), failure)
        assert "secret" not in failure.message and failure.stack_trace == ""
        inner = Failure()
        inner.CopyFrom(failure)
        [attributes] = await converter.decode([failure.encoded_attributes])
        assert attributes == {"message": "secret refusal", "stack_trace": ""}
        error = await converter.decode_failure(inner)
        assert isinstance(error, ApplicationError)
        assert (error.message, error.type, error.non_retryable) == (
            "secret refusal",
            "bad_input",
            True,
        )

    async def test_models_encrypted_and_restored(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        release = spec("r-secret")
        [payload] = await converter.encode([release])
        assert payload.metadata["encoding"] == ENCODING
        assert b"aurora" not in payload.SerializeToString()
        [restored] = await converter.decode([payload], [type(release)])
        assert restored == release

    async def test_plaintext_refused_on_conversion(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        with pytest.raises(PlaintextRefused, match="refused a payload that is not encrypted") as e:
            await converter.decode([plain()], [dict])
        assert e.value.type == PLAINTEXT_REFUSED and e.value.non_retryable
        migrating = data_converter(Settings(codec_keys=env_keys(), codec_allow_plaintext=True))
        assert await migrating.decode([plain()], [dict]) == [{"model": "aurora-secret"}]

    async def test_refusal_marker_never_encoded(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        [payload] = await converter.encode([{"encoding": "binary/gatekeeper-refused"}])
        assert payload.metadata["encoding"] == ENCODING
        [inner] = await EncryptionCodec(codec().keyring).decode([payload])
        assert inner.metadata["encoding"] == b"json/plain"

    async def test_failure_message_encrypted(self) -> None:
        converter = data_converter(Settings(codec_keys=env_keys()))
        failure = Failure()
        await converter.encode_failure(
            ApplicationError("aurora refused: secret reason", type="SeparationOfDuties"), failure
        )
        assert "secret" not in failure.message
        assert failure.encoded_attributes.metadata["encoding"] == ENCODING
        assert failure.application_failure_info.type == "SeparationOfDuties"
        error = await converter.decode_failure(failure)
        assert isinstance(error, ApplicationError)
        assert error.message == "aurora refused: secret reason"

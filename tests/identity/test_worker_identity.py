"""The worker trusts its own identity registry: it checks it and its key before polling, and its
sandboxed workflows' validators look keys up there, on the real dev server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs
from temporalio.client import Client, WorkflowUpdateFailedError

from gatekeeper import signing
from gatekeeper.config import IdentitySettings, WorkerConfig
from gatekeeper.errors import ConfigError
from gatekeeper.identity import authority
from gatekeeper.identity.keyfiles import read_private_key
from gatekeeper.identity.keys import PrincipalKind
from gatekeeper.identity.registry import IdentityRegistry, private_key_id
from gatekeeper.identity.worker_key import WORKER_PRINCIPAL, ensure_worker_key, worker_key_path
from gatekeeper.settings import Settings
from tests.helpers import eventually
from tests.identity.sandboxed import KeyLookupProbe
from tests.identity_fixtures import admin_key, register_people, root_key
from workers.worker import build_worker, key_directory, run_worker


def settings_in(tmp_path: Path, task_queue: str = "tq", **identity: object) -> Settings:
    return Settings(
        task_queue=task_queue,
        data_dir=tmp_path / "gk",
        keys_dir=tmp_path / "keys",
        config=WorkerConfig(identity=IdentitySettings.model_validate(identity)),
    )


class TestSandboxPassthrough:
    """A sandboxed workflow's query and update validator read the directory the worker installed
    for its task queue (one module instance shared with the sandbox), and nothing else."""

    async def test_validator_and_query_see_the_installed_registry(
        self, client: Client, tmp_path: Path
    ) -> None:
        task_queue = f"ident-{uuid.uuid4().hex[:10]}"
        settings = settings_in(tmp_path, task_queue)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            keys = register_people(registry, ["lena.fischer"], settings.keys_dir)
            key_id = private_key_id(keys["lena.fischer"])
            worker = build_worker(client, settings, workflows=[KeyLookupProbe], activities=[])
            with key_directory(task_queue, registry):
                async with worker:
                    handle = await client.start_workflow(
                        KeyLookupProbe.run,
                        id=f"probe-{uuid.uuid4().hex[:8]}",
                        task_queue=task_queue,
                    )
                    record = await handle.query(KeyLookupProbe.key, key_id)
                    assert record is not None
                    assert record["principal"] == "lena.fischer"
                    assert record["key_id"] == key_id
                    assert await handle.query(KeyLookupProbe.key, "ed25519:" + "0" * 32) is None

                    assert await handle.execute_update(KeyLookupProbe.use_key, key_id) == key_id
                    with pytest.raises(WorkflowUpdateFailedError) as refused:
                        await handle.execute_update(KeyLookupProbe.use_key, "ed25519:" + "0" * 32)
                    assert "is not registered on this worker" in str(refused.value.cause)
                    await handle.signal(KeyLookupProbe.done)
                    assert await handle.result() == [key_id]
            assert authority.directory_for(task_queue) is None


class TestForgedRowsAreNotKeys:
    """A key row written into the database by hand (no admin's certificate) is not a key to the
    running worker's validators, even before a restart would find it in the identity log."""

    async def test_a_hand_written_row_is_refused_by_the_validator(
        self, client: Client, tmp_path: Path
    ) -> None:
        import sqlalchemy as sa

        task_queue = f"ident-{uuid.uuid4().hex[:10]}"
        settings = settings_in(tmp_path, task_queue)
        forged = Ed25519PrivateKey.generate()
        forged_id = private_key_id(forged)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            register_people(registry, ["lena.fischer"], settings.keys_dir)
            admin = registry.keys("identity-admin")[0]
            engine = sa.create_engine(settings.effective_registry_url)
            with engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO identity_keys VALUES (:k, 'mallory', 'person', 'ed25519', "
                        ":p, '2026-01-01 00:00:00.000000', NULL, NULL, '', :c, :s, "
                        "'2026-01-01 00:00:00.000000', 99, NULL, NULL, NULL)"
                    ),
                    {
                        "k": forged_id,
                        "p": signing.public_key_b64(forged),
                        "c": admin.key_id,
                        "s": signing.sign(forged, b"not a certificate"),
                    },
                )
            engine.dispose()
            worker = build_worker(client, settings, workflows=[KeyLookupProbe], activities=[])
            with key_directory(task_queue, registry):
                async with worker:
                    handle = await client.start_workflow(
                        KeyLookupProbe.run,
                        id=f"probe-{uuid.uuid4().hex[:8]}",
                        task_queue=task_queue,
                    )
                    assert await handle.query(KeyLookupProbe.key, forged_id) is None
                    with pytest.raises(WorkflowUpdateFailedError) as refused:
                        await handle.execute_update(KeyLookupProbe.use_key, forged_id)
                    assert "is not registered on this worker" in str(refused.value.cause)
                    await handle.signal(KeyLookupProbe.done)
                    assert await handle.result() == []


class TestRunWorker:
    """run_worker opens the registry, checks it, registers (locally) or requires its key, and
    installs the registry for its task queue only while it runs."""

    async def test_local_identity_makes_a_root_and_registers_the_worker_key(
        self, client: Client, tmp_path: Path
    ) -> None:
        task_queue = f"ident-{uuid.uuid4().hex[:10]}"
        settings = settings_in(tmp_path, task_queue)
        stop = asyncio.Event()
        with capture_logs() as logs:
            running = asyncio.create_task(
                run_worker(
                    settings,
                    client=client,
                    stop_event=stop,
                    handle_signals=False,
                    workflows=[KeyLookupProbe],
                    activities=[],
                    local_identity=True,
                )
            )
            await eventually(
                lambda: any(e["event"] == "worker started" for e in logs),
                what="the worker to log that it started",
                within=10,
            )
            assert authority.directory_for(task_queue) is not None
            stop.set()
            await asyncio.wait_for(running, 15)
        assert authority.directory_for(task_queue) is None

        key_path = worker_key_path(settings)
        assert key_path == settings.data_dir / "worker-key.pem"
        assert key_path.stat().st_mode & 0o777 == 0o600
        with IdentityRegistry(settings.effective_registry_url) as registry:
            root = registry.root()
            assert root is not None
            assert root.key_id == private_key_id(
                read_private_key(settings.keys_dir / "identity-root.pem")
            )
            [worker_record] = registry.keys(WORKER_PRINCIPAL)
            assert worker_record.principal_kind is PrincipalKind.WORKER
            assert worker_record.key_id == private_key_id(read_private_key(key_path))
            assert worker_record.certified_by == root.key_id
            assert registry.verify_log(trust_root=root.key_id) == []

    async def test_an_unregistered_worker_key_stops_the_worker_naming_the_command(
        self, client: Client, tmp_path: Path
    ) -> None:
        settings = settings_in(tmp_path)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            root_key(registry, settings.keys_dir)

        with pytest.raises(ConfigError) as refused:
            await run_worker(settings, client=client, handle_signals=False, activities=[])

        message = str(refused.value)
        assert "\n" not in message
        assert "is not registered" in message
        public = signing.public_key_b64(read_private_key(worker_key_path(settings)))
        assert (
            f"`gatekeeper keys register --as {WORKER_PRINCIPAL} --kind worker "
            f"--public-key {public} --admin ADMIN`" in message
        )
        assert authority.directory_for(settings.task_queue) is None

    async def test_a_registry_without_a_root_stops_the_worker(
        self, client: Client, tmp_path: Path
    ) -> None:
        with pytest.raises(ConfigError, match="no trust root; run `gatekeeper identity init`"):
            await run_worker(settings_in(tmp_path), client=client, handle_signals=False)

    async def test_a_root_other_than_the_pinned_one_stops_the_worker(
        self, client: Client, tmp_path: Path
    ) -> None:
        other = private_key_id(Ed25519PrivateKey.generate())
        settings = settings_in(tmp_path, trust_root=other)

        with pytest.raises(ConfigError, match=f"trust root is .*, not the pinned {other}"):
            await run_worker(settings, client=client, handle_signals=False, local_identity=True)

    async def test_a_tampered_identity_log_stops_the_worker(
        self, client: Client, tmp_path: Path
    ) -> None:
        import sqlalchemy as sa

        settings = settings_in(tmp_path)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            register_people(registry, ["lena.fischer"], settings.keys_dir)
        engine = sa.create_engine(settings.effective_registry_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE identity_keys SET principal_kind = 'admin' WHERE principal = 'lena.fischer'"
                )
            )
        engine.dispose()

        with pytest.raises(
            ConfigError, match=r"cannot be trusted: key .* differs from what the identity log says"
        ):
            await run_worker(settings, client=client, handle_signals=False, local_identity=True)


class TestWorkerKey:
    """The worker's key is created once (mode 600) and must be a valid, registered worker key."""

    def test_created_once_and_registered_by_an_admin(self, tmp_path: Path) -> None:
        settings = settings_in(tmp_path)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            admin = admin_key(registry, settings.keys_dir)
            key, record = ensure_worker_key(settings, registry, admin_key=admin)
            again, same = ensure_worker_key(settings, registry)

        assert private_key_id(key) == private_key_id(again) == record.key_id == same.key_id
        assert record.certified_by == private_key_id(admin)

    def test_a_revoked_worker_key_is_refused(self, tmp_path: Path) -> None:
        settings = settings_in(tmp_path)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            admin = admin_key(registry, settings.keys_dir)
            _, record = ensure_worker_key(settings, registry, admin_key=admin)
            registry.revoke(record.key_id, reason="host retired", admin_key=admin)

            with pytest.raises(ConfigError, match=r"the worker's key .* was revoked at"):
                ensure_worker_key(settings, registry, admin_key=admin)

    def test_a_person_s_key_as_worker_key_is_refused(self, tmp_path: Path) -> None:
        settings = settings_in(tmp_path)
        with IdentityRegistry(settings.effective_registry_url) as registry:
            keys = register_people(registry, ["lena.fischer"], settings.keys_dir)
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            (settings.data_dir / "worker-key.pem").write_bytes(
                (settings.keys_dir / "lena.fischer.pem").read_bytes()
            )
            assert keys

            with pytest.raises(
                ConfigError, match=r"registered to lena\.fischer, a person, not a worker"
            ):
                ensure_worker_key(settings, registry)

    def test_the_configured_path_is_used(self, tmp_path: Path) -> None:
        path = tmp_path / "elsewhere" / "w.pem"
        settings = settings_in(tmp_path, worker_key=str(path))
        with IdentityRegistry(settings.effective_registry_url) as registry:
            key, _ = ensure_worker_key(
                settings, registry, admin_key=admin_key(registry, settings.keys_dir)
            )

        assert private_key_id(read_private_key(path)) == private_key_id(key)

"""A release notifies on a ``file`` channel (the newest channel type) on a real worker: the file
appears once, and the outbox records a delivery of type ``file``."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from gatekeeper.channels.file import FileSettings, file_name
from gatekeeper.config import WorkerConfig
from gatekeeper.models import NotificationPolicy, NotificationRoute, Recipients
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.workers.helpers import wait_until
from tests.workflows.conftest import running_worker


class TestFileChannelRelease:
    """A worker whose configuration defines ``drop`` as a file channel writes the notice of a
    release that started, for the people it concerns, as one JSON file under its key; the outbox
    line says ``file``, and no notification fails."""

    async def test_release_started_lands_in_the_directory(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        directory = tmp_path / "notices"
        config = WorkerConfig(channels={"drop": FileSettings(type="file", directory=directory)})
        settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data", config=config)
        adapters = open_adapters(settings)
        policy = factories.policy(
            notifications=NotificationPolicy(
                routes=[
                    NotificationRoute(
                        events=["release_started"], to=Recipients(concerned=True), channels=["drop"]
                    )
                ]
            )
        )
        rid = f"drop-{uuid.uuid4().hex[:8]}"
        key = f"{rid}:release_started:0:{factories.SUBMITTER}:drop"
        try:
            async with running_worker(env, task_queue, adapters):
                releases = Releases(env.client, task_queue, signer=signing.signer())
                store = settings.effective_registry_url
                await factories.start_release(releases, store, factories.spec(rid), policy)

                async def written() -> bool:
                    return await asyncio.to_thread((directory / file_name(key)).exists)

                await wait_until(written)
                audit = await releases.audit(rid)
        finally:
            adapters.close()

        document = json.loads((directory / file_name(key)).read_text())
        assert (document["idempotency_key"], document["recipient"]["id"]) == (
            key,
            factories.SUBMITTER,
        )
        assert [p.name for p in directory.iterdir()] == [file_name(key)]
        outbox = (tmp_path / "data" / "outbox.jsonl").read_text().splitlines()
        mine = [json.loads(line) for line in outbox if rid in line]
        assert [(line["channel"], line["channel_type"]) for line in mine] == [("drop", "file")]
        assert not [e for e in audit if e.action == "notification_failed"]

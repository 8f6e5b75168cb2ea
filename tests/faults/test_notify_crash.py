"""SIGKILL a worker process half-way through a webhook fan-out; after a new worker takes over,
each partner has each message exactly once, as a receiver that honours Idempotency-Key sees it.

The sender records a key as delivered once the receiver accepted it, so a restarted fan-out skips
everything that was acknowledged. What it cannot know is whether the one request in flight at the
moment of the kill arrived: it sends that one again, with the same key and marked as a possible
redelivery. So the wire carries at most one extra request per crash, and the receiver's
deduplicated view has every message once.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities import open_adapters
from bench.notify import fanout_policy, fanout_spec, seed_cohort
from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.models import NotificationPolicy, NotificationRoute, Recipients
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.adapters.builders import write_worker_config
from tests.adapters.test_webhook import REDELIVERY_HEADER, WebhookReceiver
from tests.faults.pipeline import gatekeeper_worker, has_pollers, spawn, stop, worker_env
from tests.helpers import eventually

PARTNERS = 60
SECRET_ENV = "GATEKEEPER_CRASH_HOOK_SECRET"
#: The production worker with a one-second sticky-queue timeout (see that module).
CRASHABLE = [sys.executable, "-m", "tests.faults.crashable_worker"]


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float = 30.0, what: str = "the fan-out"
) -> None:
    await eventually(check, what=what, within=within)


class TestWorkerKilledMidFanOut:
    """The fan-out resumes where it stopped: nothing acknowledged is sent again, and the request
    in flight at the kill is repeated with its key, so the receiver processes each message once."""

    @pytest.mark.slow  # two worker processes and a ten-second heartbeat timeout: about 20 s
    async def test_each_partner_gets_each_message_once(
        self, env: WorkflowEnvironment, task_queue: str, tmp_path: Path
    ) -> None:
        data_dir = tmp_path / "data"
        release_id = f"crash-{uuid.uuid4().hex[:8]}"
        settings = Settings(task_queue=task_queue, data_dir=data_dir)
        adapters = await asyncio.to_thread(open_adapters, settings)
        await asyncio.to_thread(seed_cohort, settings, adapters.registry, release_id, PARTNERS)
        adapters.close()
        receiver = WebhookReceiver(delay=0.05)  # ~3 s for the fan-out: time to kill it half-way
        receiver.start()
        config = write_worker_config(
            tmp_path / "gatekeeper.toml",
            {"partners-hook": {"type": "webhook", "url": receiver.url, "secret_env": SECRET_ENV}},
            allow_hosts=("127.0.0.1",),
        )
        policy = fanout_policy().model_copy(
            update={
                "notifications": NotificationPolicy(
                    routes=[
                        NotificationRoute(
                            events=["release_started"],
                            to=Recipients(cohorts=["bench-partners"]),
                            channels=["partners-hook"],
                        )
                    ],
                )
            }
        )
        environ = worker_env(
            env.client.service_client.config.target_host,
            task_queue,
            data_dir,
            **{SECRET_ENV: "crash-test-secret", "GATEKEEPER_CONFIG": str(config)},
        )
        releases = Releases(env.client, task_queue, signer=signing.signer())
        first = replacement = None
        try:
            first = await spawn(CRASHABLE, environ, tmp_path / "first.log")
            await wait_for(lambda: has_pollers(env.client, task_queue))
            await factories.start_release(
                releases, settings.effective_registry_url, fanout_spec(release_id), policy
            )

            async def half_way() -> bool:
                return len(receiver.received) >= PARTNERS // 3

            await wait_for(half_way)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            at_kill = len(receiver.received)

            # The dead worker's attempt is retried once its heartbeats stop for the heartbeat
            # timeout (ten seconds), by whichever worker polls then.
            replacement = await spawn(gatekeeper_worker(), environ, tmp_path / "second.log")

            async def all_arrived() -> bool:
                return len(receiver.deduplicated()) >= PARTNERS

            await wait_for(all_arrived, within=60)
            await asyncio.wait_for(releases.handle(release_id).result(), 60)
        finally:
            await stop(first)
            await stop(replacement)
            receiver.stop()

        assert PARTNERS // 3 <= at_kill < PARTNERS, "the kill came in the middle of the fan-out"
        keys = Counter(r.key for r in receiver.received)
        expected = {
            f"{release_id}:release_started:0:partner:partner-{i:05d}:partners-hook"
            for i in range(PARTNERS)
        }
        assert set(receiver.deduplicated()) == expected, "each partner, each message, once"
        resent = {k: n for k, n in keys.items() if n > 1}
        assert len(resent) <= 1 and set(resent.values()) <= {2}, (
            f"only the request in flight: {resent}"
        )
        for key in resent:
            repeats = [r for r in receiver.received if r.key == key]
            assert repeats[-1].headers.get(REDELIVERY_HEADER) == "1"
        with DeliveryStore(settings.effective_registry_url) as journal:
            recorded = [line["key"] for line in journal.lines(release_id)]
        assert set(recorded) == expected, "the journal records every delivery, each once"
        outbox = [json.loads(x) for x in (data_dir / "outbox.jsonl").read_text().splitlines()]
        mirrored = Counter(
            line["key"] for line in outbox if line["key"].startswith(f"{release_id}:")
        )
        # The killed worker may have died between recording a delivery and its outbox line.
        assert set(mirrored) <= expected and set(mirrored.values()) == {1}, "outbox: no duplicate"
        print(f"requests at the kill: {at_kill}; sent again: {sorted(resent)}")

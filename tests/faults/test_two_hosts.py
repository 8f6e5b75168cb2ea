"""Two workers on two "hosts": nothing shared but the Temporal server and one PostgreSQL database.

Each ``gatekeeper worker`` process has its own data directory (its own configuration file, worker
key and outbox file); both name the same PostgreSQL database (``GATEKEEPER_REGISTRY_URL``), the
same task queue and the same evidence root, as two machines mounting one evidence store would.
The operator drives the release with the real CLI from a third directory.

One worker is killed with SIGKILL in the middle of a webhook delivery: the loopback receiver
holds the first ``window_opened`` POST unanswered, the test finds which worker runs that notify
activity and kills it. The survivor retries the activity after its heartbeat timeout, finds the
dead worker's claim of that delivery key in the shared journal, and sends it again marked as a
possible redelivery; the release then runs to its launch on the survivor.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
import sqlalchemy as sa
import yaml
from aiohttp import web
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.registry.tables import deliveries
from gatekeeper.adapters.webhook import (
    IDEMPOTENCY_HEADER,
    REDELIVERY_HEADER,
    SIGNATURE_HEADER,
    verify_signature,
)
from gatekeeper.codec_server import serve
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models import (
    EvidenceKind,
    EvidenceRef,
    NotificationPolicy,
    NotificationRoute,
    Policy,
    Recipients,
    ReleaseOutcome,
    ReleaseState,
    ReleaseStatus,
)
from gatekeeper.releases import Releases
from tests import factories, signing
from tests.faults.pipeline import (
    APPROVERS,
    EXPECTED_PARTNERS,
    awaiting_gate,
    fast_policy,
    seed_partners,
    spawn,
    status_until,
    stop,
)
from tests.helpers import OUTAGE, describe_status, eventually, settled

SECRET = "two-hosts-hook-secret"
SECRET_ENV = "GK_TWO_HOSTS_HOOK_SECRET"
#: The event whose first webhook POST the receiver holds until its sender is dead.
TRAP_EVENT = "window_opened"
HOSTS = ("host-a", "host-b")


@dataclass
class Post:
    key: str
    redelivery: bool
    #: The sender's TCP port (its worker process owns that socket while the POST waits).
    port: int
    answered: int | None = None


@dataclass
class Receiver:
    """A webhook endpoint counting POSTs per delivery key. The first POST of ``TRAP_EVENT`` is
    never answered while the test runs (its sender is killed meanwhile); every other authentic
    POST is accepted."""

    posts: list[Post] = field(default_factory=list)
    forged: int = 0
    held: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held_post: Post | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(SECRET.encode(), request.headers.get(SIGNATURE_HEADER, ""), body):
            self.forged += 1
            return web.Response(status=401)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        post = Post(
            request.headers[IDEMPOTENCY_HEADER],
            request.headers.get(REDELIVERY_HEADER) == "1",
            int(peer[1]) if peer else 0,
        )
        self.posts.append(post)
        if self.held_post is None and post.key.split(":")[1] == TRAP_EVENT:
            self.held_post = post
            self.held.set()
            await self.release.wait()  # set when the test ends; its sender is long dead by then
            return web.Response(status=503)
        post.answered = 200
        return web.json_response({"ok": True})

    def counts(self) -> Counter[str]:
        return Counter(p.key for p in self.posts)


@dataclass
class Host:
    """One machine's worker: its own data directory, the shared database and evidence root."""

    name: str
    data_dir: Path
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    key_id: str = ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class Cluster:
    client: Client
    task_queue: str
    database: str
    root: Path
    receiver: Receiver
    hosts: list[Host]
    operator: dict[str, str]
    trust_root: str
    releases: Releases

    async def cli(self, *args: str, ok: bool = True) -> str:
        """``gatekeeper <args>`` as the operator runs it (a process of its own)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gatekeeper",
            *args,
            env=self.operator,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if ok:
            assert process.returncode == 0, (args, out.decode(), err.decode())
        return out.decode()


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "GATEKEEPER_"))}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def webhook_policy() -> Policy:
    """The six-stage policy on a seconds clock; every event also goes to the webhook channel."""
    base = fast_policy(window=2.0, partner_period=1.0)
    routes = [
        *base.notifications.routes,
        NotificationRoute(
            events=["*"], to=Recipients(roles=["operator", "security"]), channels=["hook"]
        ),
    ]
    return fast_policy(
        window=2.0, partner_period=1.0, notifications=NotificationPolicy(routes=routes)
    )


def write_spec(root: Path, evidence: Path, release_id: str) -> Path:
    """A release spec whose evidence is in the shared evidence root (file:// URIs, real hashes)."""
    (evidence / "capability-eval.md").write_text("# Capability evaluation\nNo uplift found.\n")
    (evidence / "system-card.md").write_text("# System card\nAurora 2.0.0.\n")
    spec = factories.spec(
        release_id,
        evidence=[
            EvidenceRef(
                id="capability-eval",
                kind=EvidenceKind.CAPABILITY_EVALUATION,
                uri=(evidence / "capability-eval.md").as_uri(),
                sha256=sha256_of(evidence / "capability-eval.md"),
                authors=[factories.AUTHOR],
            ),
            EvidenceRef(
                id="system-card",
                kind=EvidenceKind.SYSTEM_CARD,
                uri=(evidence / "system-card.md").as_uri(),
                sha256=sha256_of(evidence / "system-card.md"),
            ),
        ],
    )
    path = root / "release.yaml"
    path.write_text(
        yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
    )
    return path


def host_config(data_dir: Path, hook_url: str, evidence_root: Path, trust_root: str) -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "gatekeeper.toml").write_text(
        f"""
[channels.hook]
type = "webhook"
url = "{hook_url}"
secret_env = "{SECRET_ENV}"

[egress]
allow_hosts = ["127.0.0.1"]

[evidence]
roots = ["{evidence_root}"]

[identity]
trust_root = "{trust_root}"
"""
    )


def prepare_database(url: str, operator_keys: Path) -> str:
    """What the identity admin and the access admin did before the cluster started: a trust
    root, the people's keys and the partners. The trust root's key id."""
    with IdentityRegistry(url) as registry:
        signing.register_everyone(registry, operator_keys)
        root = registry.root()
    assert root is not None
    seed_partners(url)
    return root.key_id


@pytest_asyncio.fixture(loop_scope="session")
async def cluster(
    env: WorkflowEnvironment, task_queue: str, postgres_url: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    operator_dir = tmp_path / "operator"
    operator_keys = signing.write_keys(operator_dir / "keys")
    trust_root = await asyncio.to_thread(prepare_database, postgres_url, operator_keys)
    evidence_root = tmp_path / "shared-evidence"
    evidence_root.mkdir()
    target = env.client.service_client.config.target_host
    common = {
        **base_env(),
        "TEMPORAL_ADDRESS": target,
        "TEMPORAL_NAMESPACE": env.client.namespace,
        "GATEKEEPER_TASK_QUEUE": task_queue,
        "GATEKEEPER_REGISTRY_URL": postgres_url,
        "GATEKEEPER_LOG_FORMAT": "json",
    }
    operator = {
        **common,
        "GATEKEEPER_DATA_DIR": str(operator_dir),
        "GATEKEEPER_KEYS_DIR": str(operator_keys),
    }
    async with serve(app, "127.0.0.1", 0) as url:
        hosts = []
        for name in HOSTS:
            data_dir = tmp_path / name
            host_config(data_dir, f"{url}/hook", evidence_root, trust_root)
            host_env = {
                **common,
                "GATEKEEPER_DATA_DIR": str(data_dir),
                "GATEKEEPER_KEYS_DIR": str(data_dir / "keys"),
                SECRET_ENV: SECRET,
            }
            hosts.append(Host(name, data_dir, host_env))
        found = Cluster(
            client=env.client,
            task_queue=task_queue,
            database=postgres_url,
            root=tmp_path,
            receiver=receiver,
            hosts=hosts,
            operator=operator,
            trust_root=trust_root,
            releases=Releases(env.client, task_queue, signer=signing.signer()),
        )
        try:
            yield found
        finally:
            receiver.release.set()
            for host in hosts:
                await stop(host.process)


async def start_workers(cluster: Cluster) -> None:
    """Each host's key is made and registered by the identity admin (the CLI, on that host, with
    the admin's key); then both workers start and poll the one task queue."""
    for host in cluster.hosts:  # one admin, one registration after the other
        await _register_host_key(cluster, host)
    for host in cluster.hosts:
        host.process = await spawn(
            [sys.executable, "-m", "gatekeeper", "worker"],
            host.env,
            host.data_dir / "worker.log",
        )

    def started() -> list[str]:
        """Each host's worker log, once every one says it polls (``worker started``)."""
        return [(h.data_dir / "worker.log").read_text(errors="replace") for h in cluster.hosts]

    await eventually(
        started,
        lambda logs: all('"worker started"' in log for log in logs),
        what="both workers to start polling",
        within=30,
        every=0.1,
        show=lambda logs: " | ".join(log[-300:] for log in logs),
    )


async def _register_host_key(cluster: Cluster, host: Host) -> None:
    env = {**host.env, "GATEKEEPER_KEYS_DIR": cluster.operator["GATEKEEPER_KEYS_DIR"]}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper",
        "identity",
        "worker-key",
        "--register",
        "--admin",
        "identity-admin",
        "--json",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    shown = json.loads(out)
    registered = shown["registered"]
    assert registered and registered["principal_kind"] == "worker", out
    host.key_id = shown["key_id"]
    assert (host.data_dir / "worker-key.pem").exists(), "the key stays on its host"


async def approve(cluster: Cluster, release_id: str, stage: str) -> None:
    """Every approval the gate needs, each by its person through the CLI, at once."""
    await asyncio.gather(
        *(
            cluster.cli("review", "approve", release_id, "--as", person, "--role", role)
            for person, role in APPROVERS[stage]
        )
    )


async def drive_to_end(cluster: Cluster, release_id: str, *, within: float) -> ReleaseOutcome:
    """Approve (through the CLI) at each gate the release waits at, until it ends."""
    handle = cluster.releases.handle(release_id)
    approved: set[str] = set()

    async def step() -> ReleaseOutcome | str:
        description = await asyncio.wait_for(handle.describe(), 5)
        if description.status != WorkflowExecutionStatus.RUNNING:
            outcome: ReleaseOutcome = await handle.result()
            return outcome
        status: ReleaseStatus = await asyncio.wait_for(cluster.releases.status(release_id), 5)
        waiting = status.stage in APPROVERS and awaiting_gate(status.stage)(status)
        if waiting and status.stage not in approved:
            approved.add(status.stage)
            await approve(cluster, release_id, status.stage)
        return describe_status(status)

    ended = await eventually(
        step,
        lambda found: isinstance(found, ReleaseOutcome),
        what=f"{release_id} to finish",
        within=within,
        every=0.2,
        tolerate=OUTAGE,
        show=str,
    )
    assert isinstance(ended, ReleaseOutcome)
    return ended


def socket_owner(port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the loopback TCP socket whose local port is ``port`` (Linux:
    /proc/net/tcp gives the socket's inode, /proc/<pid>/fd the process holding it)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(descriptor) in inodes:
                    return pid
            except OSError:  # closed meanwhile
                continue
    return None


async def notifying_workers(cluster: Cluster, release_id: str) -> set[int]:
    """The pids of the workers running one of the release's notify activities right now."""
    description = await cluster.releases.handle(release_id).describe()
    return {
        int(a.last_worker_identity.split("@", 1)[0])
        for a in description.raw_description.pending_activities
        if "notif" in a.activity_type.name.lower() and a.last_worker_identity
    }


def delivery_rows(url: str, release_id: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    deliveries.c.key,
                    deliveries.c.channel,
                    deliveries.c.claimed_at,
                    deliveries.c.delivered_at,
                ).where(deliveries.c.release_id == release_id)
            ).all()
    finally:
        engine.dispose()
    return [dict(row._mapping) for row in rows]


def grants_of(url: str, release_id: str) -> list[tuple[str, str]]:
    with AccessRegistry(url) as registry:
        return [(g.partner_id, g.surface.value) for g in registry.list_grants(release_id)]


def worker_pids(history: Any) -> set[int]:
    """Every pid that completed a workflow task or started an activity of the release."""
    pids: set[int] = set()
    for event in history.events:
        identity = ""
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            identity = event.workflow_task_completed_event_attributes.identity
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            identity = event.activity_task_started_event_attributes.identity
        if identity:
            pids.add(int(identity.split("@", 1)[0]))
    return pids


class TestTwoHosts:
    """Two workers with different data directories, one PostgreSQL database: one is SIGKILLed
    while it delivers a webhook, the other finishes the release; every delivery key is recorded
    once, the webhook receiver accepts every key once, partners are granted once, and the
    dossier exported by the CLI verifies."""

    async def test_a_worker_killed_mid_delivery_is_finished_by_the_other_host(
        self, cluster: Cluster
    ) -> None:
        release_id = f"two-hosts-{uuid.uuid4().hex[:8]}"
        policy_file = cluster.root / "policy.yaml"
        policy = webhook_policy()
        policy_file.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
        spec_file = write_spec(cluster.root, cluster.root / "shared-evidence", release_id)
        await asyncio.gather(
            start_workers(cluster),
            cluster.cli("policy", "install", str(policy_file), "--as", factories.POLICY_ADMIN),
        )
        await cluster.cli(
            "release", "start", str(spec_file), "--policy", f"{policy.policy_id}@{policy.version}"
        )
        handle = cluster.releases.handle(release_id)
        await status_until(cluster.releases, release_id, awaiting_gate("internal_review"))
        await settled(handle)
        before_trap = cluster.receiver.counts()
        assert before_trap, "the release's first notices reached the receiver"

        # The gate closes; the window opens; its first webhook POST is held unanswered, and the
        # worker sending it is killed while it waits.
        await approve(cluster, release_id, "internal_review")
        await asyncio.wait_for(cluster.receiver.held.wait(), 30)
        held = cluster.receiver.held_post
        assert held is not None and not held.redelivery
        victim_pid = socket_owner(held.port, [h.pid for h in cluster.hosts])
        assert victim_pid is not None, "the held POST's sender is one of the two workers"
        assert victim_pid in await notifying_workers(cluster, release_id)
        [victim] = [h for h in cluster.hosts if h.pid == victim_pid]
        [survivor] = [h for h in cluster.hosts if h is not victim]
        claimed = await asyncio.to_thread(delivery_rows, cluster.database, release_id)
        assert [r["delivered_at"] for r in claimed if r["key"] == held.key] == [None], (
            "the journal holds the dead worker's claim of the held key, not a delivery"
        )
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        await victim.process.wait()
        # What the dead worker left unfinished: keys claimed and never recorded as delivered.
        # (The survivor retries the dead worker's notify activity only after its heartbeat
        # timeout; a claim of its own here is delivered normally and never marked.)
        at_kill = await asyncio.to_thread(delivery_rows, cluster.database, release_id)
        open_claims = {r["key"] for r in at_kill if r["delivered_at"] is None}
        assert held.key in open_claims

        outcome = await drive_to_end(cluster, release_id, within=90)
        assert outcome.status.state is ReleaseState.LAUNCHED, describe_status(outcome.status)

        # The webhook receiver. A key is POSTed once, unmarked; a key is POSTed again only if
        # the dead worker left it claimed but unrecorded in the shared journal, and then the
        # repeat carries the possible-redelivery mark. The held key is such a key: POSTed
        # twice, its first POST never answered, the second (the survivor's) marked and accepted.
        # A key the dead worker claimed but had not POSTed yet arrives once, marked. So every
        # key is accepted (answered 2xx) exactly once unless it was in flight at the kill.
        posts = cluster.receiver.posts
        counts = cluster.receiver.counts()
        assert cluster.receiver.forged == 0
        assert counts[held.key] == 2, counts[held.key]
        first, again = [p for p in posts if p.key == held.key]
        assert first.answered is None and not first.redelivery
        assert again.redelivery and again.answered == 200
        marked = {p.key for p in posts if p.redelivery}
        assert marked <= open_claims, f"marked without an open claim: {marked - open_claims}"
        repeated = {k for k, n in counts.items() if n > 1}
        assert repeated <= open_claims, f"POSTed again without an open claim: {repeated}"
        for key in repeated:
            later = [p for p in posts if p.key == key][1:]
            assert all(p.redelivery for p in later), f"{key}: a repeat not marked"
        assert max(counts.values()) == 2, counts.most_common(3)
        accepted_counts = Counter(p.key for p in posts if p.answered == 200)
        accepted = set(accepted_counts)
        twice = {k for k, n in accepted_counts.items() if n > 1}
        assert twice <= open_claims - {held.key}, f"accepted twice: {twice}"
        assert all(key.startswith(f"{release_id}:") for key in accepted)
        assert {k.split(":")[1] for k in accepted} >= {"release_started", TRAP_EVENT, "launched"}

        # The shared journal: one row per key (its primary key), every one delivered (the dead
        # worker's open claims became the survivor's deliveries), and the webhook rows are
        # exactly the keys the receiver accepted.
        rows = await asyncio.to_thread(delivery_rows, cluster.database, release_id)
        undelivered = [r["key"] for r in rows if r["delivered_at"] is None]
        assert not undelivered, f"claims never delivered: {undelivered}"
        assert {r["key"] for r in rows if r["channel"] == "hook"} == accepted

        # Grants: each partner once, as the workflow says.
        grants = await asyncio.to_thread(grants_of, cluster.database, release_id)
        assert not [g for g, n in Counter(grants).items() if n > 1], grants
        assert {p for p, _ in grants} == EXPECTED_PARTNERS
        assert {(g.partner_id, g.surface.value) for g in outcome.status.grants} == set(grants)

        # Both hosts worked on the release; after the kill only the survivor did.
        history = await handle.fetch_history()
        assert {victim.pid, survivor.pid} <= worker_pids(history)

        # The dossier, exported and verified by the operator's CLI against the pinned root and
        # the anchors in the shared database (signed by both hosts' worker keys).
        dossier = cluster.root / "dossier.json"
        await cluster.cli(
            "audit", "export", release_id, "--format", "json", "--output", str(dossier)
        )
        verdict = json.loads(
            await cluster.cli(
                "audit", "verify", str(dossier), "--trust-root", cluster.trust_root, "--json"
            )
        )
        assert verdict["ok"] is True, verdict
        exported = json.loads(dossier.read_text())
        listed = [d["key"] for n in exported["notifications"] for d in n["deliveries"]]
        assert sorted(listed) == sorted(r["key"] for r in rows), "the dossier lists each once"
        signers = {h["head"]["key_id"] for h in exported["signed_heads"]}
        assert signers and signers <= {host.key_id for host in cluster.hosts}, signers

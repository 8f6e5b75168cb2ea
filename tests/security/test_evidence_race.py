"""Concurrent amends: whatever order their evidence verifications land in, the release's
evidence checks are those of its latest evidence.

The attack: a submitter amends to good evidence and, while it is being verified, amends again
to evidence that does not match its digest. Each amend that changes a digest has the worker
verify the evidence again (an activity the amend awaits), so the verifications overlap; if the
older one ("ok") landed last and were recorded, a gate could close on checks of evidence the
release no longer has. The same holds for an amend right after the start, whose own
verification may still be running. The worker here runs the real verifier; the test holds
chosen verifications in flight (until it releases them) to make an older one land last.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities import Adapters, open_adapters
from activities.evidence import EvidenceActivities
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import AmendRequest, EvidenceKind, EvidenceRef, ReleaseSpec, ReleaseStatus
from gatekeeper.models.io import EvidenceCheckRequest, EvidenceCheckResult
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import eventually, running_worker

#: The evidence item the amends change (a file under the worker's data directory).
REPORT = "report"
#: A digest no file has: a verification of it is a mismatch.
WRONG = "0" * 64
#: How long a held verification waits for the test before giving up (the test failed).
HOLD_LIMIT = 30.0


@dataclass
class Hold:
    """One verification held in flight: ``started`` is set when it begins to wait."""

    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    taken: bool = False


class HeldVerifications:
    """The real ``verify_evidence``, except that the first verification of evidence naming a
    held digest waits until the test releases it."""

    def __init__(self, real: EvidenceActivities) -> None:
        self.real = real
        self.holds: dict[str, Hold] = {}
        self.lock = threading.Lock()

    def hold(self, digest: str) -> Hold:
        hold = self.holds[digest] = Hold()
        return hold

    @activity.defn(name="verify_evidence")
    def verify_evidence(self, request: EvidenceCheckRequest) -> EvidenceCheckResult:
        request = EvidenceCheckRequest.model_validate(request)
        with self.lock:
            digests = {e.sha256 for e in request.evidence}
            hold = next((h for d, h in self.holds.items() if d in digests and not h.taken), None)
            if hold is not None:
                hold.taken = True
        if hold is not None:
            hold.started.set()
            if not hold.release.wait(HOLD_LIMIT):
                raise RuntimeError("the test never released this verification")
        return self.real.verify_evidence(request)


@dataclass
class Bench:
    releases: Releases
    adapters: Adapters
    verifications: HeldVerifications
    data_dir: Path

    def evidence(self, name: str, content: str, *, digest: str | None = None) -> EvidenceRef:
        """The report as the file ``name`` holding ``content``; its digest unless ``digest``."""
        path = self.data_dir / "evidence" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return EvidenceRef(
            id=REPORT,
            kind=EvidenceKind.OTHER,
            uri=path.as_uri(),
            sha256=digest or factories.sha(content),
        )

    async def start(self, report: EvidenceRef) -> str:
        spec = self.spec(report)
        await factories.start_release(self.releases, self.adapters.policies, spec)
        return spec.release_id

    def spec(self, report: EvidenceRef) -> ReleaseSpec:
        """A new release's spec whose evidence includes ``report``."""
        base = factories.spec(f"r-amend-{uuid.uuid4().hex[:8]}")
        return factories.spec(base.release_id, evidence=[*base.evidence, report])

    async def amend(self, release_id: str, report: EvidenceRef) -> str:
        result = await self.releases.amend(
            release_id, AmendRequest(by=factories.SUBMITTER, evidence=[report])
        )
        return result.message

    async def settled(self, release_id: str, verifications: int, within: float = 15.0) -> None:
        """Wait until ``verifications`` evidence verifications completed and the release ran
        a workflow task after the last of them (so a query sees what it made of it)."""
        handle = self.releases.handle(release_id)

        async def completed() -> tuple[int, bool]:
            """Verifications completed, and whether a workflow task ran after the last one."""
            events = (await handle.fetch_history()).events
            scheduled = {
                e.event_id
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name
                == "verify_evidence"
            }
            done = [
                e.event_id
                for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
            ]
            return len(done), bool(done) and any(
                e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                and e.event_id > max(done)
                for e in events
            )

        await eventually(
            completed,
            lambda found: found[0] >= verifications and found[1],
            what=f"{verifications} evidence verification(s) of {release_id} taken in",
            within=within,
            show=lambda found: f"{found[0]} completed, a task after them: {found[1]}",
        )


def assert_checks_of_current_evidence(status: ReleaseStatus) -> None:
    """Every check is of the release's current evidence: same items, same digests, same URIs."""
    expected = {"artifact": (status.spec.artifact.uri, status.spec.artifact.sha256)}
    expected |= {e.id: (e.uri, e.sha256) for e in status.spec.evidence}
    checked = {c.id: (c.uri, c.expected) for c in status.evidence_checks}
    assert checked == expected, f"checks {checked} are not of the evidence {expected}"


def report_check(status: ReleaseStatus) -> Any:
    [check] = [c for c in status.evidence_checks if c.id == REPORT]
    return check


@pytest_asyncio.fixture(loop_scope="session")
async def bench(env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> AsyncIterator[Bench]:
    settings = Settings(task_queue=task_queue, data_dir=tmp_path / "data")
    adapters = open_adapters(settings)
    verifications = HeldVerifications(EvidenceActivities(adapters.evidence))
    async with running_worker(
        env.client, task_queue, adapters, replacing=[verifications.verify_evidence]
    ):
        # However a test ends, no held verification keeps a thread (or the worker) waiting.
        with contextlib.ExitStack() as release_all:

            def release_every_hold() -> None:
                for hold in verifications.holds.values():
                    hold.release.set()

            release_all.callback(release_every_hold)
            yield Bench(
                Releases(env.client, task_queue, signer=signing.signer()),
                adapters,
                verifications,
                settings.data_dir,
            )
    adapters.close()


class TestConcurrentAmends:
    """The evidence checks a release keeps are those of its latest evidence, whatever order the
    verifications of quick successive amends land in."""

    async def test_an_older_verification_landing_last_is_dropped(self, bench: Bench) -> None:
        """Amend A (a good file) is verified slowly; amend B (a wrong digest) comes and is
        verified first. A's late "ok" must not replace B's "mismatch": the gate stays blocked."""
        rid = await bench.start(bench.evidence("v1.txt", "report v1"))
        await bench.settled(rid, 1)
        good = bench.evidence("v2.txt", "report v2")
        held = bench.verifications.hold(good.sha256)
        first = asyncio.create_task(bench.amend(rid, good))
        assert await asyncio.to_thread(held.started.wait, HOLD_LIMIT)

        wrong = bench.evidence("v3.txt", "report v3", digest=WRONG)
        second = await bench.amend(rid, wrong)
        assert "evidence still failing: report (mismatch)" in second
        held.release.set()
        first_message = await first
        assert "a later amend changed the evidence again" in first_message
        await bench.settled(rid, 3)

        status = await bench.releases.status(rid)
        assert_checks_of_current_evidence(status)
        assert report_check(status).result == "mismatch"
        assert status.awaiting is not None and status.awaiting.people == [factories.SUBMITTER]
        audit = await bench.releases.audit(rid)
        assert sum(1 for e in audit if e.action == "evidence_verified") == 2, (
            "the start's and B's verifications are recorded, A's is not"
        )

    async def test_an_amend_right_after_the_start(self, bench: Bench) -> None:
        """The start's verification is still running when an amend changes the evidence: the
        amend's checks stand, the start's (of evidence the release no longer has) do not."""
        original = bench.evidence("start.txt", "report at the start")
        held = bench.verifications.hold(original.sha256)
        spec = bench.spec(original)
        rid = spec.release_id
        # The start answers once the release reaches its first wait, which is after the held
        # verification: it runs meanwhile, and answers once the test has released it.
        start = asyncio.create_task(
            factories.start_release(bench.releases, bench.adapters.policies, spec)
        )
        assert await asyncio.to_thread(held.started.wait, HOLD_LIMIT)

        message = await bench.amend(rid, bench.evidence("late.txt", "x", digest=WRONG))
        assert "evidence still failing: report (mismatch)" in message
        held.release.set()
        started = await start
        assert report_check(started).result == "mismatch", "the start answered the start's check"
        await bench.settled(rid, 2)

        status = await bench.releases.status(rid)
        assert_checks_of_current_evidence(status)
        assert report_check(status).result == "mismatch"

    async def test_quick_successive_amends_verified_newest_first(self, bench: Bench) -> None:
        """Four amends, each sent as soon as the previous one is applied, all verified at once
        and landing newest first: the last amend's "mismatch" stands, none of the three older
        "ok"s replaces it."""
        rid = await bench.start(bench.evidence("base.txt", "report base"))
        await bench.settled(rid, 1)
        reports = [bench.evidence(f"quick-{n}.txt", f"report {n}") for n in range(3)]
        reports.append(bench.evidence("quick-last.txt", "report last", digest=WRONG))
        holds, amends = [], []
        for report in reports:
            holds.append(bench.verifications.hold(report.sha256))
            amends.append(asyncio.create_task(bench.amend(rid, report)))
            assert await asyncio.to_thread(holds[-1].started.wait, HOLD_LIMIT)
        for hold in reversed(holds):
            hold.release.set()
        messages = await asyncio.gather(*amends)
        assert "evidence still failing: report (mismatch)" in messages[-1]
        assert all("a later amend changed the evidence again" in m for m in messages[:-1])
        await bench.settled(rid, 1 + len(reports))

        status = await bench.releases.status(rid)
        assert_checks_of_current_evidence(status)
        assert report_check(status).result == "mismatch"

    async def test_amends_sent_at_the_same_moment(self, bench: Bench) -> None:
        """Five amends sent at once, each signed over the evidence its sender read: the server
        orders them; each is applied or refused (signed over evidence an earlier one changed),
        and the checks are of the evidence the last applied amend left."""
        rid = await bench.start(bench.evidence("first.txt", "report first"))
        await bench.settled(rid, 1)
        reports = [bench.evidence(f"many-{n}.txt", f"report {n}") for n in range(5)]
        outcomes = await asyncio.gather(
            *(bench.amend(rid, r) for r in reports), return_exceptions=True
        )
        applied = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if not isinstance(o, str)]
        assert applied and all(m.startswith(f"amended {rid}") for m in applied)
        assert all(
            isinstance(o, DecisionRefused) and o.rule == "signature_binding" for o in refused
        ), refused
        await bench.settled(rid, 1 + len(applied))

        status = await bench.releases.status(rid)
        assert_checks_of_current_evidence(status)
        assert report_check(status).result == "ok"
        [current] = [e for e in status.spec.evidence if e.id == REPORT]
        assert current.sha256 in {r.sha256 for r in reports}

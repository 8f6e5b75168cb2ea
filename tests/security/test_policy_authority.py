"""The starter names the rules, the worker supplies them: policies come only from the store.

The attack of issue 10: a policy with the lab's ``policy_id``, ``version`` and title but a single
``launch`` stage, handed to ``release start`` (our CLI) or put in the start input (any Temporal
client). Both are refused and nothing runs, is granted, published or sent. Installed versions are
immutable and audited; a release keeps the version it started under.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.policy import PolicyActivities
from gatekeeper.adapters.policy_store import versioned_by_content
from gatekeeper.adapters.registry.tables import policies
from gatekeeper.errors import StartRefused
from gatekeeper.models import DecisionKind, LaunchStage, Policy
from gatekeeper.models.installed import InstalledPolicy, ResolvePolicyRequest
from gatekeeper.policy import policy_sha256
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import adapters_for, eventually, running_worker
from tests.workflows.conftest import Harness

LAB_VERSION = "7"
LAB_TITLE = "Lab frontier release standard"


def lab_policy(**overrides: Any) -> Policy:
    """The lab's real pipeline (review, government, partners, launch)."""
    return factories.policy(**{"version": LAB_VERSION, "title": LAB_TITLE, **overrides})


def evil_policy() -> Policy:
    """Same id, version and title as the lab's, but a single launch stage: no review at all."""
    return factories.policy(
        version=LAB_VERSION, title=LAB_TITLE, stages=[LaunchStage(id="public_launch")]
    )


def write_policy(policy: Policy, path: Path) -> Path:
    path.write_text(yaml.safe_dump(policy.model_dump(mode="json"), sort_keys=False))
    return path


def write_spec(directory: Path, release_id: str) -> Path:
    """A designated, high-risk model's spec whose evidence file is really on disk."""
    evidence = directory / "card.md"
    evidence.write_text("system card v1\n")
    digest = hashlib.sha256(evidence.read_bytes()).hexdigest()
    path = directory / f"{release_id}.yaml"
    path.write_text(
        f"release_id: {release_id}\nmodel: {{name: aurora, version: '1'}}\n"
        f"artifact: {{uri: https://a.example/w, sha256: {'a' * 64}}}\n"
        "risk_tier: high\ncovered_model: designated\nsubmitter: rita.manager\n"
        "partner_cohorts: [gov-approved]\nregions: [us]\n"
        f"evidence:\n  - {{id: card, kind: system_card, uri: card.md, sha256: {digest}}}\n"
    )
    return path


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


async def gatekeeper(harness: Harness, *args: str) -> Outcome:
    """``python -m gatekeeper ARGS`` in a child process, pointed at the harness's worker."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": harness.env.client.namespace,
        "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
        "GATEKEEPER_DATA_DIR": str(harness.data_dir),
        "GATEKEEPER_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    env.pop("GATEKEEPER_POLICY", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return Outcome(process.returncode or 0, out.decode(), err.decode())


async def never_started(harness: Harness, release_id: str) -> None:
    with pytest.raises(RPCError) as raised:
        await harness.handle(release_id).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


async def nothing_happened(harness: Harness, release_id: str) -> None:
    """No activity but (at most) the policy resolution ran; nothing granted, sent or published."""
    history = await harness.handle(release_id).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert set(scheduled) <= {"resolve_policy"}, scheduled
    assert harness.adapters.registry.list_grants(release_id) == []
    assert not [line for line in harness.outbox_lines() if release_id in json.dumps(line)]
    assert harness.adapters.deliveries.lines(release_id) == []
    assert harness.adapters.deliveries.claims(release_id) == []
    assert harness.adapters.launcher.launches_of(release_id) == []
    assert harness.adapters.clearinghouse.receipts(release_id) == []


async def failure_of(harness: Harness, release_id: str) -> ApplicationError:
    """The release's failure: one line, non-retryable, and no stack trace in its history."""
    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(harness.handle(release_id).result(), 20)
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert "\n" not in cause.message
    history = await harness.handle(release_id).fetch_history()
    [failed] = [
        e.workflow_execution_failed_event_attributes.failure
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    ]
    assert failed.stack_trace == "" and failed.message == cause.message
    return cause


def raw_spec(release_id: str) -> dict[str, Any]:
    return factories.spec(release_id).model_dump(mode="json")


class TestTheStarterCannotSupplyThePolicy:
    """A policy file or body given to `release start` is refused with one line (exit 2) before any
    workflow starts; a raw start input carrying a policy body fails at once, closed."""

    async def test_cli_refuses_the_single_stage_policy_file(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        harness.install(lab_policy(), default=True)
        evil = write_policy(evil_policy(), tmp_path / "EVIL.yaml")
        rid = f"r-evil-{uuid.uuid4().hex[:8]}"
        spec = write_spec(tmp_path, rid)

        for given in (str(evil), evil.read_text()):
            outcome = await gatekeeper(harness, "release", "start", str(spec), "--policy", given)
            assert outcome.code == 2, outcome.stderr
            assert len(outcome.error_lines) == 1, outcome.stderr
            assert "never a policy file or body" in outcome.error_lines[0]
            assert "gatekeeper policy install" in outcome.error_lines[0]
        await never_started(harness, rid)

    async def test_raw_start_with_a_policy_body_fails_closed(self, harness: Harness) -> None:
        evil = evil_policy()
        rid = f"r-evil-raw-{uuid.uuid4().hex[:8]}"
        await harness.env.client.start_workflow(
            "ModelReleaseWorkflow",
            {"spec": raw_spec(rid), "policy": evil.model_dump(mode="json"),
             "policy_sha256": policy_sha256(evil)},
            id=f"release-{rid}",
            task_queue=harness.releases.task_queue,
        )  # fmt: skip

        cause = await failure_of(harness, rid)
        assert cause.type == "bad_input"
        assert "never carries one" in cause.message
        assert "gatekeeper policy install" in cause.message
        await nothing_happened(harness, rid)

    @pytest.mark.parametrize(
        ("mutate", "field"),
        [
            (lambda inp: inp["spec"].pop("submitter"), "spec.submitter"),
            (lambda inp: inp.update(extra=1), "extra"),
            (lambda inp: inp["spec"].update(description="x" * 100_000), "spec.description"),
            (lambda inp: inp.update(spec=[]), "spec"),
        ],
        ids=["missing-field", "extra-field", "oversized-text", "wrong-type"],
    )
    async def test_a_malformed_raw_start_input_fails_closed_in_one_line(
        self, harness: Harness, mutate: Any, field: str
    ) -> None:
        """A start input the worker cannot read ends the release at once with one ``bad_input``
        line naming the field, instead of a workflow task that fails and retries forever."""
        rid = f"r-malformed-{uuid.uuid4().hex[:8]}"
        inp: dict[str, Any] = {"spec": raw_spec(rid)}
        mutate(inp)
        await harness.env.client.start_workflow(
            "ModelReleaseWorkflow", inp, id=f"release-{rid}", task_queue=harness.releases.task_queue
        )
        cause = await failure_of(harness, rid)
        assert cause.type == "bad_input"
        assert cause.message.startswith("bad input for the release's start: ")
        assert field in cause.message
        await nothing_happened(harness, rid)

    async def test_raw_start_naming_an_uninstalled_version_fails_closed(
        self, harness: Harness
    ) -> None:
        rid = f"r-unknown-{uuid.uuid4().hex[:8]}"
        await harness.env.client.start_workflow(
            "ModelReleaseWorkflow",
            {"spec": raw_spec(rid), "policy_ref": "test-policy@999"},
            id=f"release-{rid}",
            task_queue=harness.releases.task_queue,
        )
        cause = await failure_of(harness, rid)
        assert cause.type == "policy_not_installed"
        assert cause.message.startswith("policy test-policy@999 is not installed")
        await nothing_happened(harness, rid)

    async def test_a_malformed_reference_is_bad_input(self, harness: Harness) -> None:
        rid = f"r-badref-{uuid.uuid4().hex[:8]}"
        await harness.env.client.start_workflow(
            "ModelReleaseWorkflow",
            {"spec": raw_spec(rid), "policy_ref": "../../etc/passwd"},
            id=f"release-{rid}",
            task_queue=harness.releases.task_queue,
        )
        cause = await failure_of(harness, rid)
        assert cause.type == "bad_input"
        assert "is not ID@VERSION" in cause.message
        await nothing_happened(harness, rid)

    async def test_raw_start_with_a_spec_the_policy_does_not_admit_fails_closed(
        self, harness: Harness
    ) -> None:
        """The CLI checks the spec against the policy; a raw client skips the CLI, not the check."""
        rid = f"r-nobody-{uuid.uuid4().hex[:8]}"
        spec = {**raw_spec(rid), "submitter": "mallory"}
        await harness.env.client.start_workflow(
            "ModelReleaseWorkflow",
            {"spec": spec, "policy_ref": harness.install(factories.policy())},
            id=f"release-{rid}",
            task_queue=harness.releases.task_queue,
        )
        cause = await failure_of(harness, rid)
        assert cause.type == "spec_not_allowed"
        assert "the spec cannot run under policy test-policy@" in cause.message
        assert "submitter: 'mallory' is not on the policy's roster" in cause.message
        await nothing_happened(harness, rid)

    async def test_the_client_api_reports_the_refusal_in_one_line(self, harness: Harness) -> None:
        rid = f"r-api-{uuid.uuid4().hex[:8]}"
        with pytest.raises(StartRefused) as raised:
            await harness.releases.start(factories.spec(rid), "test-policy@999")
        assert raised.value.rule == "policy_not_installed"
        assert str(raised.value).startswith("policy test-policy@999 is not installed")
        await nothing_happened(harness, rid)


class TestUnknownReferences:
    """`release start --policy ID@VERSION` of a version nobody installed is one line, exit 2, and
    starts nothing; so is a reference that is not ID@VERSION."""

    @pytest.mark.parametrize(
        ("given", "message"),
        [
            ("test-policy@999", "policy test-policy@999 is not installed"),
            ("no-such-policy@1", "policy no-such-policy@1 is not installed"),
            ("test policy", "never a policy file or body"),
        ],
    )
    async def test_cli(self, harness: Harness, tmp_path: Path, given: str, message: str) -> None:
        rid = f"r-ref-{uuid.uuid4().hex[:8]}"
        spec = write_spec(tmp_path, rid)
        outcome = await gatekeeper(harness, "release", "start", str(spec), "--policy", given)
        assert outcome.code == 2, outcome.stderr
        assert len(outcome.error_lines) == 1, outcome.stderr
        assert message in outcome.error_lines[0]
        await never_started(harness, rid)


class TestInstalledVersionsAreImmutableAndAudited:
    """Installing records who and when; the same content again is a no-op that says so; other
    content under an installed id@version is refused in one line and changes nothing."""

    async def test_install_reinstall_and_conflict(self, harness: Harness, tmp_path: Path) -> None:
        lab = write_policy(lab_policy(), tmp_path / "lab.yaml")
        evil = write_policy(evil_policy(), tmp_path / "EVIL.yaml")
        before = datetime.now(UTC)

        first = await gatekeeper(harness, "policy", "install", str(lab), "--as", "pat.admin")
        assert first.code == 0, first.stderr
        assert f"test-policy@{LAB_VERSION} installed, sha256 {policy_sha256(lab_policy())}" in (
            first.stdout
        )
        again = await gatekeeper(harness, "policy", "install", str(lab), "--as", "mallory")
        assert again.code == 0, again.stderr
        assert "already installed (identical content; unchanged)" in again.stdout

        refused = await gatekeeper(harness, "policy", "install", str(evil), "--as", "mallory")
        assert refused.code == 2, refused.stderr
        assert len(refused.error_lines) == 1, refused.stderr
        assert (
            f"policy test-policy@{LAB_VERSION} is already installed with sha256"
            in (refused.error_lines[0])
        )
        assert "give the new content a new version" in refused.error_lines[0]

        listed = await gatekeeper(harness, "policy", "list", "--json")
        assert listed.code == 0, listed.stderr
        rows = {row["ref"]: row for row in json.loads(listed.stdout)}
        row = rows[f"test-policy@{LAB_VERSION}"]
        assert row["sha256"] == policy_sha256(lab_policy())
        assert row["stages"] == len(lab_policy().stages)
        assert row["installed_by"] == "pat.admin", "the first installer, not the re-installer"
        installed_at = datetime.fromisoformat(row["installed_at"])
        assert before - timedelta(seconds=1) <= installed_at <= datetime.now(UTC)

        table = await gatekeeper(harness, "policy", "list")
        assert f"test-policy@{LAB_VERSION}" in table.stdout and "pat.admin" in table.stdout

        shown = await gatekeeper(harness, "policy", "show", f"test-policy@{LAB_VERSION}", "--json")
        assert shown.code == 0, shown.stderr
        document = json.loads(shown.stdout)
        assert document["sha256"] == policy_sha256(lab_policy())
        assert [s["id"] for s in document["policy"]["stages"]] == [
            s.id for s in lab_policy().stages
        ]

    async def test_show_of_an_unknown_version_is_one_line(self, harness: Harness) -> None:
        outcome = await gatekeeper(harness, "policy", "show", "test-policy@999")
        assert outcome.code == 2, outcome.stderr
        assert outcome.error_lines == [
            "error: policy test-policy@999 is not installed; install it with `gatekeeper policy "
            "install FILE` (see `gatekeeper policy list`)"
        ]


class TestTheWorkerChecksWhatItRuns:
    """The worker re-checks the installed content: a row edited in the database behind the
    store's back, or a policy the worker's own check refuses, does not run."""

    async def test_a_tampered_row_is_refused(self, harness: Harness) -> None:
        ref = harness.install(lab_policy(title="tamper target"))
        policy_id, version = ref.split("@")
        engine = sa.create_engine(Settings(data_dir=harness.data_dir).effective_registry_url)
        with engine.begin() as connection:
            connection.execute(
                sa.update(policies)
                .where(policies.c.policy_id == policy_id, policies.c.version == version)
                .values(content=evil_policy().model_dump(mode="json"))
            )
        engine.dispose()
        rid = f"r-tamper-{uuid.uuid4().hex[:8]}"
        with pytest.raises(StartRefused) as raised:
            await harness.releases.start(factories.spec(rid), ref)
        assert raised.value.rule == "policy_not_runnable"
        assert "does not match its recorded sha256" in str(raised.value)
        await nothing_happened(harness, rid)

    async def test_the_workers_own_check_hook_is_applied(self, harness: Harness) -> None:
        def channels_configured(policy: Policy) -> list[str]:
            return [f"channel {c!r} is not configured on this worker" for c in ("outbox",)]

        ref = harness.install(lab_policy(title="hooked"))
        harness.adapters.policy_checks.append(channels_configured)
        try:
            rid = f"r-hook-{uuid.uuid4().hex[:8]}"
            with pytest.raises(StartRefused) as raised:
                await harness.releases.start(factories.spec(rid), ref)
        finally:
            harness.adapters.policy_checks.remove(channels_configured)
        assert raised.value.rule == "policy_not_runnable"
        assert str(raised.value) == (
            f"policy {ref} cannot run on this worker: channel 'outbox' is not configured on "
            "this worker"
        )
        await nothing_happened(harness, rid)


class TestRunningReleasesKeepTheirVersion:
    """A newer default installed after a release started changes nothing for that release (its
    history pins the version it resolved); releases started afterwards run the new default."""

    async def test_new_default_after_start(self, harness: Harness) -> None:
        v1 = lab_policy(version="41")
        v2 = lab_policy(
            version="42",
            stages=[
                *factories.policy().stages[:1],
                LaunchStage(id="public_launch"),
            ],
        )
        harness.adapters.policies.install(v1, by="pat.admin", default=True)
        rid = f"r-keep-{uuid.uuid4().hex[:8]}"
        started = await harness.releases.start(factories.spec(rid))  # the default: v1
        assert (started.policy_id, started.policy_version) == ("test-policy", "41")
        await harness.at_stage(rid, "internal_review")

        harness.adapters.policies.install(v2, by="pat.admin", default=True)
        await harness.pass_internal_review(rid)
        status = await harness.at_stage(rid, "government_testing_window")
        assert status.policy_version == "41"
        assert status.policy_sha256 == policy_sha256(v1)
        assert [s.id for s in status.stages] == [s.id for s in v1.stages]

        history = await harness.handle(rid).fetch_history()
        scheduled = {
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "resolve_policy"
        }
        [resolved] = [
            e.activity_task_completed_event_attributes.result
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
        ]
        pinned = json.loads(resolved.payloads[0].data)
        assert (pinned["version"], pinned["sha256"]) == ("41", policy_sha256(v1))
        assert pinned["installed_by"] == "pat.admin"

        later = f"r-later-{uuid.uuid4().hex[:8]}"
        newer = await harness.releases.start(factories.spec(later, partner_cohorts=[]))
        assert newer.policy_version == "42"
        assert [s.id for s in newer.stages] == ["internal_review", "public_launch"]


async def starting_refusal(handle: Any) -> str:
    """The message a query gets once the workflow's first task ran (before it, the server
    answers that the workflow is not ready)."""

    async def query() -> str:
        try:
            await handle.query("get_status")
        except WorkflowQueryFailedError as err:
            return str(err)
        raise AssertionError("the release answered before its policy was resolved")

    return await eventually(
        query, what="the release's first task to refuse a query", within=10, tolerate=(RPCError,)
    )


class _SlowResolver:
    """``resolve_policy`` that waits for the test before answering."""

    def __init__(self, real: PolicyActivities, release: threading.Event) -> None:
        self._real = real
        self._release = release

    @activity.defn(name="resolve_policy")
    def resolve_policy(self, request: ResolvePolicyRequest) -> InstalledPolicy:
        self._release.wait(20)
        return self._real.resolve_policy(request)


class TestWhileTheReleaseIsStarting:
    """Until the worker has resolved the policy, queries and updates are refused with one line
    (``release_starting``) and change nothing; then the release answers as usual."""

    async def test_queries_and_updates_wait_for_the_policy(
        self, env: Any, task_queue: str, tmp_path: Path
    ) -> None:
        adapters = adapters_for(task_queue, tmp_path)
        ref = factories.install_policy(adapters.policies, factories.policy())
        release = threading.Event()
        slow = _SlowResolver(PolicyActivities(adapters.policies), release)
        api = Releases(env.client, task_queue, signer=signing.signer())
        rid = f"r-starting-{uuid.uuid4().hex[:8]}"
        try:
            async with running_worker(
                env.client, task_queue, adapters, replacing=[slow.resolve_policy], threads=4
            ):
                handle = await env.client.start_workflow(
                    "ModelReleaseWorkflow",
                    {"spec": raw_spec(rid), "policy_ref": ref},
                    id=f"release-{rid}",
                    task_queue=task_queue,
                )
                assert await starting_refusal(handle) == (
                    f"release {rid} is starting; try again in a moment"
                )
                with pytest.raises(WorkflowUpdateFailedError) as update:
                    await handle.execute_update(
                        DecisionKind.APPROVE.value,
                        {"decider": "sam.safety", "role": "safety"},
                    )
                cause = update.value.cause
                assert isinstance(cause, ApplicationError)
                assert cause.type == "release_starting"
                release.set()
                status = await api.status(rid)  # waits out the rest of the start
                assert status.policy_sha256 == policy_sha256(
                    versioned_by_content(factories.policy())
                )
                gate = status.gates.get("internal_review")
                assert gate is None or gate.decisions == [], "the refused update left no trace"
                await handle.terminate("test over")
        finally:
            release.set()
            adapters.close()

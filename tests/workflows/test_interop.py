"""Any Temporal client can see and steer releases: the `temporal` CLI with plain JSON."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from gatekeeper import search_attributes as sa
from tests import factories
from tests import signing as test_keys
from tests.helpers import eventually
from tests.workflows.conftest import Harness
from workers.devserver import temporal_executable


async def temporal(harness: Harness, *args: str) -> tuple[int, str]:
    target = harness.env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        temporal_executable(),
        *args,
        "--address",
        target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


class TestTemporalCli:
    """The stock `temporal` CLI finds releases by search attribute and sends judged updates."""

    async def test_visibility_query_finds_release_in_window(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        await harness.pass_internal_review(rid)
        await harness.at_stage(rid, "government_testing_window")
        query = f'ReleaseStage="government_testing_window" AND RiskTier="high" AND WorkflowId="release-{rid}"'
        code, out = await eventually(  # visibility is eventually consistent
            lambda: temporal(harness, "workflow", "list", "--query", query, "-o", "json"),
            lambda ran: f"release-{rid}" in ran[1],
            what=f"`temporal workflow list` to find release-{rid}",
            within=10,
            every=0.2,
        )
        assert code == 0 and f"release-{rid}" in out, out
        description = await harness.handle(rid).describe()
        attrs = description.typed_search_attributes
        assert attrs.get(sa.RELEASE_STAGE) == "government_testing_window"
        assert attrs.get(sa.AWAITING_ROLES) == ["government_liaison"]
        assert attrs.get(sa.GOVERNMENT_WINDOW_ENDS_AT) is not None

    async def test_json_update_is_judged_like_the_cli(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        refused = {"decider": "ada.author", "role": "safety"}
        code, out = await temporal(
            harness,
            "workflow",
            "update",
            "execute",
            "-w",
            f"release-{rid}",
            "--name",
            "approve",
            "--input",
            json.dumps(await test_keys.signed(harness.releases, rid, "approve", refused)),
        )
        assert code != 0
        assert "authored evidence capability-eval" in out and "separation of duties" in out
        accepted = {"decider": "sam.safety", "role": "safety", "comment": "from the temporal CLI"}
        code, out = await temporal(
            harness,
            "workflow",
            "update",
            "execute",
            "-w",
            f"release-{rid}",
            "--name",
            "approve",
            "--input",
            json.dumps(await test_keys.signed(harness.releases, rid, "approve", accepted)),
        )
        assert code == 0, out
        assert "sam.safety approved internal_review as safety" in out
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        assert [(d.person, d.comment) for d in gate.valid_approvals()] == [
            ("sam.safety", "from the temporal CLI")
        ]


class TestExactlyOnce:
    """Each notification reaches each recipient once and each grant is made once."""

    async def test_notifications_and_grants_once(self, harness: Harness) -> None:
        status = await harness.start()
        rid = status.release_id
        await harness.at_stage(rid, "internal_review")
        outcome = await harness.launch(rid)

        lines = [line for line in harness.outbox_lines() if line["key"].startswith(f"{rid}:")]
        keys = Counter(line["key"] for line in lines)
        assert keys and max(keys.values()) == 1, "no delivery key twice"
        events = Counter(line["key"].split(":")[1] for line in lines)
        for event in (
            "release_started",
            "gate_waiting",
            "government_submitted",
            "window_opened",
            "window_ended",
            "partner_access_granted",
            "launched",
        ):
            assert events[event] >= 1, f"nobody was told about {event}"
        launched = [line for line in lines if ":launched:" in line["key"]]
        assert {line["recipient"]["id"] for line in launched} >= {
            factories.SUBMITTER,
            factories.OPERATOR,
        }

        grants = harness.adapters.registry.list_grants(rid)
        assert len(grants) == len({(g.partner_id, g.surface) for g in grants}) == 3
        assert {g.grant_id for g in grants} == {g.grant_id for g in outcome.status.grants}

"""One way to refuse: malformed JSON from any Temporal client gets Gatekeeper's one-line refusal.

Attack (issue 10, "Refusals leak and differ"): malformed JSON sent with the stock ``temporal``
CLI (wrong type, extra field, ``{}``, ``[]``, over-long text, control characters, a date without
a zone) came back as the SDK's multi-line, *retryable* ``Failed decoding arguments`` pydantic
dump, and every audited rule refusal stored a Python stack trace with the worker's file paths in
the release's history.

Each update now takes plain JSON and parses it in its validator: the refusal is one line naming
the field, rule ``bad_input``, non-retryable, identical to what our CLI prints for the same
mistake, and it leaves the release and its history untouched. Refusals written to history (the
audited ``request_refused`` path) carry no stack trace.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, DecisionRequest
from gatekeeper.models.orders import OrderSpec
from gatekeeper.signed_requests import ACTOR_FIELDS
from tests import factories, signing
from tests.helpers import settled
from tests.orders.conftest import OrderHarness, orders
from tests.security.conftest import Harness
from tests.workflows.test_interop import temporal

__all__ = ["orders"]  # the access order fixture, used below

ROOT = Path(__file__).resolve().parents[2]
NAIVE = "2030-01-01T00:00:00"
SOON = "2030-01-01T00:00:00Z"

#: What the `temporal` CLI prints when a workflow refuses an update.
TEMPORAL_REFUSAL = re.compile(
    r"^Error: unable to update workflow: (?P<message>.*) "
    r"\(type: (?P<type>[A-Za-z_]+), retryable: (?P<retryable>true|false)\)$"
)


@dataclass(frozen=True)
class Raw:
    """One malformed payload for one update, and the exact refusal it must get."""

    name: str
    update: str
    payload: Any
    message: str


#: Every malformed kind the issue names, over several updates. Payloads are raw JSON values.
RAW_CASES = [
    Raw(
        "wrong type",
        "approve",
        {"decider": 42, "role": "safety"},
        "bad input for approve: decider: expected a string, got a number",
    ),
    Raw(
        "wrong type",
        "approve_partners",
        {"by": "gus.liaison", "partners": "acme-labs", "decision": "approve"},
        "bad input for approve_partners: partners: expected an array, got a string",
    ),
    Raw(
        "extra field",
        "hold",
        {"by": "olga.ops", "reason": "audit", "sudo": True},
        "bad input for hold: unknown field 'sudo'",
    ),
    Raw(
        "extra field",
        "approve",
        {"decider": "sam.safety", "role": "safety", "signature": None, "policy": {"stages": []}},
        "bad input for approve: unknown field 'policy'",
    ),
    Raw(
        "extra field with a hostile name",
        "approve",
        {"decider": "sam.safety", "role": "safety", "\r\n# forged\x1b[2J" + "z" * 500: 1},
        "bad input for approve: unknown field '\\u000d\\u000a# forged\\u001b[2Jzzzzzzzzzz…'",
    ),
    Raw("empty object", "delegate", {}, "bad input for delegate: by: field required (and 3 more)"),
    Raw(
        "empty object", "approve", {}, "bad input for approve: decider: field required (and 1 more)"
    ),
    Raw(
        "array",
        "withdraw",
        [],
        "bad input for withdraw: expected a JSON object, got an array",
    ),
    Raw(
        "string",
        "reject",
        "approve",
        "bad input for reject: expected a JSON object, got a string",
    ),
    Raw("null", "amend", None, "bad input for amend: expected a JSON object, got null"),
    Raw(
        "over-long text",
        "approve",
        {"decider": "sam.safety", "role": "safety", "comment": "x" * 2001},
        "bad input for approve: comment: at most 2000 characters",
    ),
    Raw(
        "over-long text",
        "record_government_response",
        {"by": "gus.liaison", "kind": "cleared", "reference": "r" * 201},
        "bad input for record_government_response: reference: at most 200 characters",
    ),
    Raw(
        "control character",
        "approve",
        {"decider": "sam.safety", "role": "safety", "comment": "fine\r## Approved by everyone"},
        "bad input for approve: comment: control character U+000D is not allowed "
        "(only newline and tab)",
    ),
    Raw(
        "control character",
        "hold",
        {"by": "olga.ops", "reason": "pause\x1b[2J"},
        "bad input for hold: reason: control character U+001B is not allowed "
        "(only newline and tab)",
    ),
    Raw(
        "control character",
        "approve_partners",
        {
            "by": "gus.liaison",
            "partners": ["acme-labs"],
            "decision": "approve",
            "reference": "letter 7\nAPPROVED",
        },
        "bad input for approve_partners: reference: control character U+000A is not allowed",
    ),
    Raw(
        "control character",
        "suspend_access",
        {"order_id": "o-1", "by": "olga.ops", "scope": "everyone", "reason": "ok\u202egnp.exe"},
        "bad input for suspend_access: reason: control character U+202E is not allowed "
        "(only newline and tab)",
    ),
    Raw(
        "date without a zone",
        "hold",
        {"by": "olga.ops", "reason": "audit", "until": NAIVE},
        "bad input for hold: until: a date with a time zone is needed",
    ),
    Raw(
        "date without a zone",
        "delegate",
        {"by": "sam.safety", "to": "sara.safety", "role": "safety", "until": "2030-01-01"},
        "bad input for delegate: until: a date with a time zone is needed",
    ),
    Raw(
        "date without a zone",
        "record_government_response",
        {"by": "gus.liaison", "kind": "delay_requested", "delay_until": NAIVE},
        "bad input for record_government_response: delay_until: a date with a time zone is needed",
    ),
    Raw(
        "nested",
        "amend",
        {"by": factories.SUBMITTER, "evidence": [{"id": "x", "kind": "system_card"}]},
        "bad input for amend: evidence[0].uri: field required (and 1 more)",
    ),
]


@dataclass(frozen=True)
class Same:
    """A mistake our CLI can express, and the same mistake as raw JSON."""

    name: str
    argv: list[str]
    update: str
    payload: dict[str, Any]


R = "{rid}"
SAME_CASES = [
    Same(
        "uppercase id",
        ["review", "approve", R, "--as", "Sam.Safety", "--role", "safety"],
        "approve",
        {"decider": "Sam.Safety", "role": "safety"},
    ),
    Same(
        "empty id",
        ["review", "reject", R, "--as", "", "--role", "safety"],
        "reject",
        {"decider": "", "role": "safety"},
    ),
    Same(
        "over-long comment",
        ["review", "approve", R, "--as", "sam.safety", "--role", "safety", "-m", "x" * 2001],
        "approve",
        {"decider": "sam.safety", "role": "safety", "comment": "x" * 2001},
    ),
    Same(
        "carriage return in a comment",
        ["review", "request-changes", R, "--as", "sam.safety", "--role", "safety", "-m", "a\rb"],
        "request_changes",
        {"decider": "sam.safety", "role": "safety", "comment": "a\rb"},
    ),
    Same(
        "escape sequence in a reason",
        ["ops", "hold", R, "--as", "olga.ops", "--reason", "pause\x1b[2J"],
        "hold",
        {"by": "olga.ops", "reason": "pause\x1b[2J"},
    ),
    Same(
        "empty reason",
        ["ops", "withdraw", R, "--as", "olga.ops", "--reason", ""],
        "withdraw",
        {"by": "olga.ops", "reason": ""},
    ),
    Same(
        "newline in a one-line reference",
        ["gov", "respond", R, "--as", "gus.liaison", "--cleared", "--reference", "l7\nOK"],
        "record_government_response",
        {"by": "gus.liaison", "kind": "cleared", "reference": "l7\nOK"},
    ),
    Same(
        "bidi override in a concern",
        ["gov", "respond", R, "--as", "gus.liaison", "--concern", "ok\u202eevil"],
        "record_government_response",
        {"by": "gus.liaison", "kind": "concern_raised", "concern": "ok\u202eevil"},
    ),
    Same(
        "delegate to a malformed id",
        [
            "review",
            "delegate",
            R,
            "--as",
            "sam.safety",
            "--to",
            "Sara Safety",
            "--role",
            "safety",
            "--until",
            SOON,
        ],
        "delegate",
        {"by": "sam.safety", "to": "Sara Safety", "role": "safety", "until": SOON},
    ),
]


@dataclass(frozen=True)
class Refusal:
    message: str
    type: str
    retryable: bool


async def send_raw(harness: Harness, rid: str, update: str, *inputs: Any) -> tuple[int, str]:
    """``temporal workflow update execute`` with each input as a JSON argument; an input that
    names its actor is signed with that person's key (an honest sender: what is tested is the
    request's content, refused by its rules before any signature would count)."""
    args = ["workflow", "update", "execute", "-w", f"release-{rid}", "--name", update]
    for value in inputs:
        if update in ACTOR_FIELDS and len(inputs) == 1:
            value = await signing.signed(harness.releases, rid, update, value)
        args += ["--input", json.dumps(value)]
    return await temporal(harness, *args)


def parse_refusal(code: int, out: str) -> Refusal:
    lines = out.splitlines()
    assert code != 0, out
    assert len(lines) == 1, f"expected one line, got {lines!r}"
    match = TEMPORAL_REFUSAL.match(lines[0])
    assert match, lines[0]
    return Refusal(match["message"], match["type"], match["retryable"] == "true")


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


async def settled_history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    """The history once the release is idle (its start-up notifications and audit writes done)."""
    await settled(handle)
    return await history(handle)


@pytest.fixture
async def rid(harness: Harness) -> str:
    status = await harness.start(spec=factories.spec(f"r-raw-{uuid.uuid4().hex[:10]}"))
    await harness.at_stage(status.release_id, "internal_review")
    return status.release_id


def cli_env(harness: Harness, workdir: Path) -> dict[str, str]:
    policy_file = workdir / "policy.yaml"
    policy_file.write_text(
        yaml.safe_dump(factories.policy().model_dump(mode="json"), sort_keys=False)
    )
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": harness.env.client.namespace,
        "GATEKEEPER_TASK_QUEUE": harness.releases.task_queue,
        "GATEKEEPER_POLICY": str(policy_file),
        "GATEKEEPER_DATA_DIR": str(harness.data_dir),
        "GATEKEEPER_KEYS_DIR": str(signing.write_keys(workdir / "keys")),
        "COLUMNS": "500",
    }


class TestTemporalCliMalformedJson:
    """Malformed JSON from the stock `temporal` CLI is refused by the validator in one line naming
    the field, rule bad_input, non-retryable; the status and the history are unchanged."""

    async def test_every_malformed_payload(self, harness: Harness, rid: str, subtests: Any) -> None:
        handle = harness.handle(rid)
        before = await harness.releases.status(rid)
        events = await settled_history(handle)
        for case in RAW_CASES:
            with subtests.test(msg=f"{case.name}: {case.update}"):
                refusal = parse_refusal(*await send_raw(harness, rid, case.update, case.payload))
                assert refusal == Refusal(case.message, "bad_input", retryable=False)
                assert "Failed decoding" not in refusal.message
        after = await harness.releases.status(rid)
        assert after.model_dump() == before.model_dump()
        assert len(await history(handle)) == len(events), "a refused payload left history"

    async def test_no_argument(self, harness: Harness, rid: str) -> None:
        handle = harness.handle(rid)
        events = await settled_history(handle)
        refusal = parse_refusal(*await send_raw(harness, rid, "approve"))
        assert refusal == Refusal(
            "bad input for approve: expected a JSON object, got nothing", "bad_input", False
        )
        assert len(await history(handle)) == len(events)

    async def test_raw_client_non_json_payload(self, harness: Harness, rid: str) -> None:
        """A client sending bytes, not JSON, gets the same kind of refusal (not a decode dump)."""
        handle = harness.handle(rid)
        events = await settled_history(handle)
        raw = RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"\x00\xff"))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("approve", raw, result_type=dict)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.message, cause.type, cause.non_retryable) == (
            "bad input for approve: expected a JSON object, got a payload encoded 'binary/plain'",
            "bad_input",
            True,
        )
        assert len(await history(handle)) == len(events)

    async def test_our_client_maps_bad_input(self, harness: Harness, rid: str) -> None:
        """A program that skips validation (model_construct) gets DecisionRefused(bad_input)."""
        unchecked = DecisionRequest.model_construct(
            decider="sam.safety", role="safety", stage=None, comment="a\rb", signature=None
        )
        with pytest.raises(DecisionRefused) as err:
            await harness.releases.decide(rid, DecisionKind.APPROVE, unchecked)
        assert err.value.rule == "bad_input"
        assert str(err.value) == (
            "bad input for approve: comment: control character U+000D is not allowed "
            "(only newline and tab)"
        )


class TestSameTextAsGatekeeperCli:
    """A mistake our CLI can express gets exactly the same one line from `gatekeeper` (refused
    before anything is sent, exit 2) as from the `temporal` CLI (refused by the worker)."""

    async def test_same_line(
        self, harness: Harness, rid: str, tmp_path: Path, subtests: Any
    ) -> None:
        env = cli_env(harness, tmp_path)
        handle = harness.handle(rid)
        before = await harness.releases.status(rid)
        events = await settled_history(handle)
        for case in SAME_CASES:
            with subtests.test(msg=case.name):
                argv = [a.replace(R, rid) for a in case.argv]
                ours = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "gatekeeper", *argv],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                lines = [line for line in ours.stderr.splitlines() if line.strip()]
                assert ours.returncode == 2, ours.stderr
                assert len(lines) == 1, lines
                assert lines[0].startswith("error: bad input for "), lines[0]
                theirs = parse_refusal(*await send_raw(harness, rid, case.update, case.payload))
                assert theirs == Refusal(lines[0].removeprefix("error: "), "bad_input", False)
        assert (await harness.releases.status(rid)).model_dump() == before.model_dump()
        assert len(await history(handle)) == len(events)


class TestCliSendsNothingMalformed:
    """Our CLI refuses a malformed request before it reads a key or reaches Temporal at all."""

    async def test_refused_without_a_server(self, harness: Harness, tmp_path: Path) -> None:
        env = {**cli_env(harness, tmp_path), "TEMPORAL_ADDRESS": "127.0.0.1:9"}
        for argv, line in (
            (
                [
                    "review",
                    "approve",
                    "r-x",
                    "--as",
                    "sam.safety",
                    "--role",
                    "safety",
                    "-m",
                    "\x07",
                ],
                "bad input for approve: comment: control character U+0007 is not allowed "
                "(only newline and tab)",
            ),
            (
                [
                    "gov",
                    "respond",
                    "r-x",
                    "--as",
                    "gus.liaison",
                    "--cleared",
                    "--reference",
                    "l7\nOK",
                ],
                "bad input for record_government_response: reference: control character U+000A "
                "is not allowed",
            ),
            (
                ["gov", "approve-partners", "r-x", "--as", "gus.liaison", "-p", "Acme Labs"],
                "bad input for approve_partners: partners[0]: must be an id: lower-case letters, "
                "digits, '.', '_', '-' (at most 64)",
            ),
        ):
            ours = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "gatekeeper", *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert (ours.returncode, ours.stderr.strip()) == (2, f"error: {line}")


def _update_failures(events: list[HistoryEvent]) -> list[Any]:
    return [
        e.workflow_execution_update_completed_event_attributes.outcome.failure
        for e in events
        if e.HasField("workflow_execution_update_completed_event_attributes")
        and e.workflow_execution_update_completed_event_attributes.outcome.HasField("failure")
    ]


class TestNoStackTraceInHistory:
    """A rule refusal written to history (the audited request_refused path) is one line with its
    rule type, non-retryable, and carries no stack trace: no worker file path, no code."""

    async def test_audited_refusal_has_no_trace(self, harness: Harness, rid: str) -> None:
        handle = harness.handle(rid)
        for decider, role in (("ada.author", "safety"), ("lee.legal", "safety")):
            code, out = await send_raw(harness, rid, "approve", {"decider": decider, "role": role})
            assert code != 0 and "(type: " in out, out
        audit = await harness.releases.audit(rid)
        assert [e.action for e in audit[-2:]] == ["request_refused", "request_refused"]
        failures = _update_failures(await history(handle))
        assert len(failures) == 2, failures
        for failure in failures:
            assert failure.stack_trace == ""
            assert "\n" not in failure.message and failure.message
            assert failure.application_failure_info.non_retryable
            assert failure.application_failure_info.type in (
                "separation_of_duties",
                "role_not_held",
            )
            assert not failure.HasField("cause")
        raw = b"".join(e.SerializeToString() for e in await history(handle))
        assert b".py" not in raw and b"Traceback" not in raw

    async def test_accepted_and_refused_updates_side_by_side(
        self, harness: Harness, rid: str
    ) -> None:
        """The release still takes a good decision after a run of refusals."""
        for case in RAW_CASES[:3]:
            await send_raw(harness, rid, case.update, case.payload)
        code, out = await send_raw(
            harness, rid, "approve", {"decider": "sam.safety", "role": "safety", "comment": "a\nb"}
        )
        assert code == 0, out
        gate = (await harness.releases.status(rid)).gates["internal_review"]
        assert [(d.person, d.comment) for d in gate.valid_approvals()] == [("sam.safety", "a\nb")]


class TestAccessOrderMalformedJson:
    """The access order's updates (exempt, lift) parse raw JSON the same way: one line naming the
    field, rule bad_input, non-retryable, and the order is unchanged."""

    async def test_exempt_and_lift(self, orders: OrderHarness, subtests: Any) -> None:
        order_id = f"o-raw-{uuid.uuid4().hex[:8]}"
        order = OrderSpec.model_validate(
            {
                "order_id": order_id,
                "models": [f"m-{uuid.uuid4().hex[:8]}"],
                "scope": "foreign_persons",
                "reason": "test order",
                "required_safeguards": ["kyc"],
            }
        )
        await orders.orders.apply(order, factories.OPERATOR)
        handle = orders.orders.handle(order_id)
        before = await orders.orders.status(order_id)
        events = await settled_history(handle)
        cases = [
            (
                "exempt",
                {"by": factories.OPERATOR, "partners": ["acme-labs"], "reason": "ok", "x": 1},
                "bad input for exempt: unknown field 'x'",
            ),
            ("exempt", [], "bad input for exempt: expected a JSON object, got an array"),
            (
                "lift",
                {"by": factories.OPERATOR, "safeguards": ["kyc"], "reason": "done\r\nforged"},
                "bad input for lift: reason: control character U+000D is not allowed "
                "(only newline and tab)",
            ),
            ("lift", {}, "bad input for lift: by: field required (and 1 more)"),
        ]
        for update, payload, message in cases:
            with subtests.test(msg=message):
                code, out = await temporal(
                    orders,
                    "workflow",
                    "update",
                    "execute",
                    "-w",
                    f"access-order-{order_id}",
                    "--name",
                    update,
                    "--input",
                    json.dumps(payload),
                )
                assert parse_refusal(code, out) == Refusal(message, "bad_input", False)
        # A rule refusal from the order's validator is typed and traceless too.
        code, out = await temporal(
            orders,
            "workflow",
            "update",
            "execute",
            "-w",
            f"access-order-{order_id}",
            "--name",
            "lift",
            "--input",
            json.dumps({"by": factories.OPERATOR, "reason": "done"}),
        )
        refusal = parse_refusal(code, out)
        assert (refusal.type, refusal.retryable) == ("safeguards_missing", False)
        after = await orders.orders.status(order_id)
        assert after.model_dump() == before.model_dump()
        assert len(await history(handle)) == len(events)

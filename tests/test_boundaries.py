"""What is written once and shared (no server): Temporal error translation, workflow ids, and
how times read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gatekeeper import ids, temporal_errors
from gatekeeper.errors import (
    ConfigError,
    ConnectionFailed,
    DecisionRefused,
    OrderNotFound,
    StartRefused,
)
from gatekeeper.text import when


def rpc(status: RPCStatusCode, message: str = "boom") -> RPCError:
    return RPCError(message, status, b"")


class TestRefusals:
    """A workflow's refusal keeps its message and names the rule it broke (``refused`` when the
    failure carries none)."""

    def test_an_application_error_names_its_rule(self) -> None:
        err = WorkflowUpdateFailedError(ApplicationError("not yours", type="not_authorized"))
        refused = temporal_errors.refusal(err)
        assert isinstance(refused, DecisionRefused)
        assert (str(refused), refused.rule) == ("not yours", "not_authorized")

    def test_a_failure_without_a_type_is_refused(self) -> None:
        err = WorkflowUpdateFailedError(ApplicationError("no type"))
        assert temporal_errors.refusal(err).rule == "refused"
        bare = WorkflowUpdateFailedError(RuntimeError("odd"))
        assert (str(temporal_errors.refusal(bare)), temporal_errors.refusal(bare).rule) == (
            "odd",
            "refused",
        )

    def test_a_start_refusal_is_a_start_refused(self) -> None:
        err = WorkflowFailureError(cause=ApplicationError("bad policy", type="policy_invalid"))
        refused = temporal_errors.start_refusal(err)
        assert isinstance(refused, StartRefused)
        assert (str(refused), refused.rule) == ("bad policy", "policy_invalid")


class TestWorkflowErrors:
    """An RPC about one workflow: ended, missing, or the server's own words as ``rpc_error``."""

    ENDED = DecisionRefused("it ended", rule="order_lifted")
    MISSING = OrderNotFound("no access order 'o1'")

    def translate(self, err: RPCError) -> Exception:
        return temporal_errors.workflow_error(
            err, what="access order o1", ended=self.ENDED, missing=self.MISSING
        )

    def test_completed_is_ended(self) -> None:
        err = rpc(RPCStatusCode.NOT_FOUND, "workflow execution already completed")
        assert temporal_errors.has_ended(err)
        assert self.translate(err) is self.ENDED

    def test_not_found_is_missing(self) -> None:
        err = rpc(RPCStatusCode.NOT_FOUND, "workflow not found for ID: access-order-o1")
        assert temporal_errors.not_found(err) and not temporal_errors.has_ended(err)
        assert self.translate(err) is self.MISSING

    def test_anything_else_quotes_the_server(self) -> None:
        error = self.translate(rpc(RPCStatusCode.INVALID_ARGUMENT, "bad request"))
        assert isinstance(error, DecisionRefused)
        assert (str(error), error.rule) == ("access order o1: bad request", "rpc_error")

    @pytest.mark.parametrize(
        ("status", "timed_out"),
        [
            (RPCStatusCode.DEADLINE_EXCEEDED, True),
            (RPCStatusCode.CANCELLED, True),
            (RPCStatusCode.UNAVAILABLE, False),
        ],
    )
    def test_timeouts(self, status: RPCStatusCode, timed_out: bool) -> None:
        assert temporal_errors.timed_out(rpc(status)) is timed_out

    def test_a_failing_task_is_recognised(self) -> None:
        assert temporal_errors.task_failing("Workflow Task in failed state")
        assert temporal_errors.task_failing("[TMPRL1100] Nondeterminism error: ...")
        assert not temporal_errors.task_failing("workflow not found")


class TestServiceErrors:
    """An RPC to the cluster: unreachable is a connection failure, anything else a configuration
    problem, with the hint only when the server refused or lacks the call."""

    def test_unreachable(self) -> None:
        error = temporal_errors.service_error(rpc(RPCStatusCode.UNAVAILABLE, "down"), "cannot x")
        assert isinstance(error, ConnectionFailed)
        assert str(error) == "cannot x: down"

    def test_refused_with_hint(self) -> None:
        error = temporal_errors.service_error(
            rpc(RPCStatusCode.PERMISSION_DENIED, "no"), "cannot x", refused_hint=" (hint)"
        )
        assert isinstance(error, ConfigError)
        assert str(error) == "cannot x: no (hint)"

    def test_other_errors_carry_no_hint(self) -> None:
        error = temporal_errors.service_error(
            rpc(RPCStatusCode.INVALID_ARGUMENT, "bad"), "cannot x", refused_hint=" (hint)"
        )
        assert str(error) == "cannot x: bad"

    def test_a_connection_refused_reads_short(self) -> None:
        error = temporal_errors.unreachable(
            RuntimeError("Failed client connect: tonic::transport::Error(Connection refused)"),
            target="localhost:1",
            namespace="default",
        )
        assert str(error) == (
            "cannot reach Temporal at localhost:1 (namespace default): connection refused; "
            "start one with `gatekeeper dev` or set TEMPORAL_ADDRESS"
        )


class TestIds:
    """Each workflow id format is written once and reads back to the business id."""

    def test_release(self) -> None:
        assert ids.release_workflow_id("r-1") == "release-r-1"
        assert ids.release_id_of(ids.release_workflow_id("r-1")) == "r-1"

    def test_order(self) -> None:
        assert ids.order_workflow_id("o.1") == "access-order-o.1"
        assert ids.order_id_of(ids.order_workflow_id("o.1")) == "o.1"
        assert ids.order_workflow_id("o.1").startswith(ids.ORDER_ACTOR_PREFIX)


class TestWhen:
    """Times read the same in messages, details, the CLI and dossiers (dossiers to the second)."""

    AT = datetime(2026, 12, 27, 9, 30, 12, tzinfo=UTC)

    def test_minutes_and_seconds(self) -> None:
        assert when(self.AT) == "2026-12-27 09:30 UTC"
        assert when(self.AT, seconds=True) == "2026-12-27 09:30:12 UTC"

    def test_another_zone_is_shown_in_utc(self) -> None:
        local = self.AT.astimezone(timezone(timedelta(hours=2)))
        assert when(local) == "2026-12-27 09:30 UTC"

    def test_none_and_strings(self) -> None:
        assert when(None) == "—"
        assert when("") == "—"
        assert when("2026-12-27T09:30:12+00:00", seconds=True) == "2026-12-27 09:30:12 UTC"
        assert when("not a time") == "not a time"

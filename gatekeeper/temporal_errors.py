"""Temporal client errors become Gatekeeper errors here, at one boundary.

Every client-side module that talks to Temporal (releases, access orders, dossiers, repair,
search attributes, the CLI's admin commands) reads Temporal's errors through these functions, so
a refusal, a missing or ended workflow and an unreachable server are worded the same wherever
they surface:

- :func:`refusal` / :func:`start_refusal`: an update (a start) the workflow refused becomes
  :class:`DecisionRefused` (:class:`StartRefused`) carrying the rule it broke (the
  ``ApplicationError`` type);
- :func:`workflow_error`: an RPC about one workflow — not found, ended, or anything else;
- :func:`unreachable`: a client that could not connect at all;
- :func:`service_error`: an RPC to the cluster itself (namespaces, search attributes, task
  queues) — unreachable (:class:`ConnectionFailed`) or refused (:class:`ConfigError`);
- :func:`not_found`, :func:`already_exists`, :func:`has_ended`, :func:`timed_out`, :func:`task_failing`: the
  classifications the callers branch on.
"""

from __future__ import annotations

from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gatekeeper.errors import (
    ConfigError,
    ConnectionFailed,
    DecisionRefused,
    GatekeeperError,
    StartRefused,
)

#: What Temporal says when a workflow task fails on every attempt: an update is refused with the
#: first, a query fails with the Core SDK's non-determinism error (code TMPRL1100).
_TASK_FAILING = ("workflow task in failed state", "nondeterminism", "tmprl1100")
#: The file holding a bearer token for the cluster (see :mod:`gatekeeper.client`).
TOKEN_VARIABLE = "GATEKEEPER_TEMPORAL_TOKEN_FILE"


def refused_because(err: WorkflowUpdateFailedError | WorkflowFailureError) -> tuple[str, str]:
    """The workflow's refusal: its message, and its ``ApplicationError`` type as the rule
    (``refused`` when it has none)."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "refused"
    return str(cause or err), "refused"


def refusal(err: WorkflowUpdateFailedError) -> DecisionRefused:
    """An update the workflow refused, as :class:`DecisionRefused` with the rule it broke."""
    message, rule = refused_because(err)
    return DecisionRefused(message, rule=rule)


def start_refusal(err: WorkflowFailureError) -> StartRefused:
    """A workflow that ended before it started (the worker refused its input or policy)."""
    message, rule = refused_because(err)
    return StartRefused(message, rule=rule)


def not_found(err: RPCError) -> bool:
    """Whether the server knows no such workflow (or namespace)."""
    return err.status == RPCStatusCode.NOT_FOUND


def already_exists(err: RPCError) -> bool:
    """Whether what the call creates exists already (another process was first)."""
    return err.status == RPCStatusCode.ALREADY_EXISTS


def has_ended(err: RPCError) -> bool:
    """Whether an update or query found the workflow closed (``workflow execution already
    completed``)."""
    return not_found(err) and "completed" in err.message.lower()


def timed_out(err: RPCError) -> bool:
    """Whether the call gave up waiting for an answer (its deadline passed, or it was
    cancelled)."""
    return err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


def task_failing(message: str) -> bool:
    """Whether ``message`` says the workflow's task keeps failing (the release needs repair)."""
    lowered = message.lower()
    return any(marker in lowered for marker in _TASK_FAILING)


def workflow_error(
    err: RPCError, *, what: str, ended: GatekeeperError, missing: GatekeeperError
) -> GatekeeperError:
    """An RPC about one workflow, named ``what`` (``release r1``): ``ended`` if the workflow has
    closed, ``missing`` if it never existed, else the server's message as ``rpc_error``."""
    if not_found(err):
        return ended if has_ended(err) else missing
    return DecisionRefused(f"{what}: {err.message}", rule="rpc_error")


def service_error(
    err: RPCError, what: str, *, refused_hint: str = ""
) -> ConfigError | ConnectionFailed:
    """An RPC to the cluster that failed while doing ``what``: :class:`ConnectionFailed` if the
    server could not be reached in time, else :class:`ConfigError` (with ``refused_hint`` when
    the server refused the call or does not offer it)."""
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return ConnectionFailed(f"{what}: {err.message}")
    hint = ""
    if err.status in (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED):
        hint = refused_hint
    return ConfigError(f"{what}: {err.message}{hint}")


def unreachable(err: BaseException, *, target: str, namespace: str) -> ConnectionFailed:
    """A client that could not connect to ``target``: the cause in a few words, and what to do."""
    return ConnectionFailed(
        f"cannot reach Temporal at {target} (namespace {namespace}): "
        f"{_cause(err)}; start one with `gatekeeper dev` or set TEMPORAL_ADDRESS"
    )


def _cause(err: BaseException) -> str:
    """The cause in a few words: Core's transport errors are long Rust debug strings."""
    text = str(err)
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("dns error", "unknown host"),
        ("timed out", "timed out"),
        ("certificate", "TLS certificate problem"),
        (
            "Unauthenticated",
            f"unauthenticated (check TEMPORAL_API_KEY / {TOKEN_VARIABLE} / TLS settings)",
        ),
        ("PermissionDenied", f"permission denied (check the token in {TOKEN_VARIABLE})"),
    ):
        if needle.lower() in text.lower():
            return short
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__

"""What ``release start`` sends: one Update-with-Start operation.

The workflow start (input, id policies, the search attributes the release is found by, the
summary and details the Temporal UI shows from the first moment) carries the ``wait_started``
update (:data:`~gatekeeper.models.status.STARTED_UPDATE`), which the release answers once its
policy is resolved and its first stage waits. :class:`~gatekeeper.releases.Releases` sends it and
translates the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from gatekeeper import search_attributes as sa
from gatekeeper.models.spec import ReleaseSpec
from gatekeeper.models.status import ReleaseInput, ReleaseOutcome
from gatekeeper.release_list import WORKFLOW_TYPE
from gatekeeper.text import for_markdown

#: How Temporal fails an update whose workflow ended before the update completed.
ENDED_FIRST = "AcceptedUpdateCompletedWorkflow"


def start_operation(
    spec: ReleaseSpec, policy_ref: str | None, *, workflow_id: str, task_queue: str
) -> WithStartWorkflowOperation[Any, ReleaseOutcome]:
    """The start of ``spec``'s release under ``policy_ref``; a release id is never reused."""
    search = TypedSearchAttributes(
        [
            SearchAttributePair(sa.MODEL_NAME, spec.model.name),
            SearchAttributePair(sa.MODEL_VERSION, spec.model.version),
            SearchAttributePair(sa.RISK_TIER, spec.risk_tier.value),
            SearchAttributePair(sa.SUBMITTED_BY, spec.submitter),
            SearchAttributePair(sa.RELEASE_STATE, "active"),
        ]
    )
    return WithStartWorkflowOperation(
        WORKFLOW_TYPE,
        ReleaseInput(spec=spec, policy_ref=policy_ref),
        id=workflow_id,
        task_queue=task_queue,
        result_type=ReleaseOutcome,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=search,
        static_summary=(
            f"{spec.model.name} {spec.model.version} · risk {spec.risk_tier.value} · "
            f"submitted by {spec.submitter}"
        ),
        static_details=_static_details(spec, policy_ref),
    )


async def read_start_outcome(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """Read the start's own outcome, which the SDK keeps in a future of ``operation``: a start
    error nobody reads (the update's error said it already) is otherwise reported when the
    future is collected ("Future exception was never retrieved"). The future is settled once the
    call returned or raised; the timeout only guards an SDK that left it unset."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(operation.workflow_handle(), timeout=0.01)


def _static_details(spec: ReleaseSpec, policy_ref: str | None) -> str:
    # A list, not a table: the Temporal UI renders a Markdown table without cell padding, so
    # its columns ran together ("capability-evalcapability_evaluation").
    evidence = "\n".join(
        f"- {for_markdown(e.id)} · {e.kind.value} · `{e.sha256[:12]}`" for e in spec.evidence
    )
    return (
        f"**{for_markdown(spec.model.name)} {for_markdown(spec.model.version)}** — "
        f"release `{spec.release_id}`\n\n"
        f"- Risk tier: **{spec.risk_tier.value}**; covered model: **{spec.covered_model.value}**\n"
        f"- Submitted by `{spec.submitter}`\n"
        f"- Artifact `{spec.artifact.sha256}`\n"
        f"- Policy `{policy_ref or 'the default installed policy'}` (resolved by the worker; its "
        "sha256 is in the status)\n\n"
        f"**Evidence** (id · kind · sha256):\n\n{evidence}\n"
    )

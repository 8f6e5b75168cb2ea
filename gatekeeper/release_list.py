"""``release list``: what Temporal's visibility knows of releases, without asking any of them.

:class:`ListFilter` turns the command's filters into a visibility query over the search
attributes each release publishes (:mod:`gatekeeper.search_attributes`); :func:`summary_of` reads
one listed execution back as a :class:`ReleaseSummary` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from temporalio.client import WorkflowExecution

from gatekeeper import search_attributes as sa
from gatekeeper.ids import release_id_of

#: The release workflow's type name, as visibility lists it.
WORKFLOW_TYPE = "ModelReleaseWorkflow"


@dataclass(frozen=True)
class ReleaseSummary:
    """One row of ``release list``: what visibility knows without asking the workflow."""

    release_id: str
    model: str
    version: str
    stage: str
    state: str
    risk_tier: str
    awaiting_roles: list[str]
    awaiting_since: datetime | None
    window_ends_at: datetime | None
    submitted_by: str
    started_at: datetime | None
    closed_at: datetime | None
    execution_status: str


@dataclass(frozen=True)
class ListFilter:
    """Filters for ``release list``; each becomes a clause of a visibility query."""

    stage: str | None = None
    state: str | None = None
    model: str | None = None
    awaiting_role: str | None = None
    window_ends_before: datetime | None = None
    submitted_by: str | None = None
    risk_tier: str | None = None
    running_only: bool = False
    task_queue: str | None = None

    def query(self) -> str:
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
        for attribute, value in (
            (sa.RELEASE_STAGE.name, self.stage),
            (sa.RELEASE_STATE.name, self.state),
            (sa.MODEL_NAME.name, self.model),
            (sa.AWAITING_ROLES.name, self.awaiting_role),
            (sa.SUBMITTED_BY.name, self.submitted_by),
            (sa.RISK_TIER.name, self.risk_tier),
        ):
            if value:
                clauses.append(f"{attribute} = {_quote(value)}")
        if self.window_ends_before is not None:
            clauses.append(
                f"{sa.GOVERNMENT_WINDOW_ENDS_AT.name} < '{self.window_ends_before.isoformat()}'"
            )
        if self.running_only:
            clauses.append("ExecutionStatus = 'Running'")
        if self.task_queue:
            clauses.append(f"TaskQueue = {_quote(self.task_queue)}")
        return " AND ".join(clauses)


def _quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"filter value {value!r} may not contain quotes or backslashes")
    return f"'{value}'"


def summary_of(execution: WorkflowExecution) -> ReleaseSummary:
    """One row of ``release list`` from a listed execution's search attributes."""
    attrs = execution.typed_search_attributes
    release_id = release_id_of(execution.id)
    return ReleaseSummary(
        release_id=release_id,
        model=attrs.get(sa.MODEL_NAME) or "",
        version=attrs.get(sa.MODEL_VERSION) or "",
        stage=attrs.get(sa.RELEASE_STAGE) or "",
        state=attrs.get(sa.RELEASE_STATE) or "",
        risk_tier=attrs.get(sa.RISK_TIER) or "",
        awaiting_roles=list(attrs.get(sa.AWAITING_ROLES) or []),
        awaiting_since=attrs.get(sa.AWAITING_SINCE),
        window_ends_at=attrs.get(sa.GOVERNMENT_WINDOW_ENDS_AT),
        submitted_by=attrs.get(sa.SUBMITTED_BY) or "",
        started_at=execution.start_time,
        closed_at=execution.close_time,
        execution_status=execution.status.name.lower() if execution.status else "unknown",
    )

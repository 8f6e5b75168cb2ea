"""``release list``: what Temporal's visibility knows of releases, without asking any of them.

:class:`ListFilter` turns the command's filters into a visibility query over the search
attributes each release publishes (:mod:`gatekeeper.search_attributes`); :func:`summary_of` reads
one listed execution back as a :class:`ReleaseSummary` row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio.client import WorkflowExecution

from gatekeeper import search_attributes as sa
from gatekeeper.choices import one_of
from gatekeeper.errors import InputError
from gatekeeper.ids import release_id_of
from gatekeeper.models.enums import ReleaseState, RiskTier, WellKnownRole
from gatekeeper.models.policy import Policy

if TYPE_CHECKING:
    from gatekeeper.settings import Settings

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
                clauses.append(f"{attribute} = {quote_literal(value)}")
        if self.window_ends_before is not None:
            clauses.append(
                f"{sa.GOVERNMENT_WINDOW_ENDS_AT.name} < '{self.window_ends_before.isoformat()}'"
            )
        if self.running_only:
            clauses.append("ExecutionStatus = 'Running'")
        if self.task_queue:
            clauses.append(f"TaskQueue = {quote_literal(self.task_queue)}")
        return " AND ".join(clauses)


def quote_literal(value: str) -> str:
    """A string literal of a visibility query (no quotes or backslashes in ``value``)."""
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


#: How the CLI names each filter in its refusals (``--state: 'Held' is not a release state``).
CLI_NAMES: Mapping[str, str] = {
    "stage": "--stage",
    "state": "--state",
    "risk_tier": "--risk-tier",
    "awaiting_role": "--awaiting-role",
}


def checked_filter(
    settings: Settings,
    *,
    stage: str | None = None,
    state: str | None = None,
    model: str | None = None,
    awaiting_role: str | None = None,
    risk_tier: str | None = None,
    window_ends_before: datetime | None = None,
    submitted_by: str | None = None,
    running_only: bool = False,
    names: Mapping[str, str] = CLI_NAMES,
) -> ListFilter:
    """A :class:`ListFilter` whose values are checked first: a state and a risk tier must be
    known ones, a stage and an awaited role those of some policy a release can run under.
    ``names`` says how the refusal names each filter (the CLI's options, the console's fields).
    Reads the policy store (synchronous).

    Raises:
        InputError: (one line) the first bad value, naming the closest known one.
    """
    if state:
        one_of(names["state"], state, [s.value for s in ReleaseState], "a release state")
    if risk_tier:
        one_of(names["risk_tier"], risk_tier, [r.value for r in RiskTier], "a risk tier")
    if stage or awaiting_role:
        policies = known_policies(settings)
        if stage:
            one_of(names["stage"], stage, known_stages(policies), "a stage of any installed policy")
        if awaiting_role:
            one_of(
                names["awaiting_role"],
                awaiting_role,
                known_roles(policies),
                "a role of any installed policy",
            )
    filters = ListFilter(
        stage=stage,
        state=state,
        model=model,
        awaiting_role=awaiting_role,
        window_ends_before=window_ends_before,
        submitted_by=submitted_by,
        risk_tier=risk_tier,
        running_only=running_only,
    )
    try:
        filters.query()
    except ValueError as err:
        raise InputError(str(err)) from err
    return filters


def known_policies(settings: Settings) -> list[Policy]:
    """Every policy a release can run under: those installed in the store (when the registry
    exists; reading never creates it), the packaged ones and ``GATEKEEPER_POLICY``'s file."""
    from gatekeeper.policy import load_default_policy, load_demo_policy, load_policy

    policies = [load_default_policy().policy, load_demo_policy().policy]
    if settings.policy_path is not None and settings.policy_path.is_file():
        policies.append(load_policy(settings.policy_path).policy)
    url = settings.effective_registry_url
    if not url.startswith("sqlite:///") or Path(url.removeprefix("sqlite:///")).is_file():
        from gatekeeper.adapters.policy_store import PolicyStore

        with PolicyStore(url) as store:
            policies += [installed.policy for installed in store.list()]
    return policies


def known_stages(policies: list[Policy]) -> list[str]:
    """Every stage id of ``policies``, sorted."""
    return sorted({stage.id for policy in policies for stage in policy.stages})


def known_roles(policies: list[Policy]) -> list[str]:
    """Every role a release can await under ``policies``: the well-known ones, the rosters',
    and each role a stage names (quorums, escalations)."""
    roles = {role.value for role in WellKnownRole}
    for policy in policies:
        roles.update(role for person in policy.roster for role in person.roles)
        _named_roles(policy.model_dump(mode="json")["stages"], "", roles)
    return sorted(roles)


def _named_roles(value: object, key: str, into: set[str]) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            _named_roles(item, str(name), into)
    elif isinstance(value, list):
        for item in value:
            _named_roles(item, key, into)
    elif isinstance(value, str) and ("role" in key or key == "escalate_to"):
        into.add(value)

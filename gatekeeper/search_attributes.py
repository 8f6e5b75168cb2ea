"""Custom search attributes operators filter releases by, in the Temporal UI and ``gatekeeper``.

They must be registered on the namespace before any worker runs: a workflow that upserts an
unregistered attribute does not fail, its task retries forever. ``gatekeeper dev``, the test
environments and the compose stack all register :data:`ALL` from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, TypedSearchAttributes

from gatekeeper.models.status import ReleaseStatus

MODEL_NAME = SearchAttributeKey.for_keyword("ModelName")
MODEL_VERSION = SearchAttributeKey.for_keyword("ModelVersion")
RELEASE_STAGE = SearchAttributeKey.for_keyword("ReleaseStage")
RELEASE_STATE = SearchAttributeKey.for_keyword("ReleaseState")
RISK_TIER = SearchAttributeKey.for_keyword("RiskTier")
AWAITING_ROLES = SearchAttributeKey.for_keyword_list("AwaitingRoles")
GOVERNMENT_WINDOW_ENDS_AT = SearchAttributeKey.for_datetime("GovernmentWindowEndsAt")
SUBMITTED_BY = SearchAttributeKey.for_keyword("SubmittedBy")
#: When the parties in ``AwaitingRoles`` (and the people the status names) were first awaited at
#: the release's current stage: it does not move when what the release waits for is reworded.
AWAITING_SINCE = SearchAttributeKey.for_datetime("AwaitingSince")
#: ``launched``, ``rejected`` or ``withdrawn`` once the release has ended; unset before.
RELEASE_OUTCOME = SearchAttributeKey.for_keyword("ReleaseOutcome")

ALL: tuple[SearchAttributeKey[Any], ...] = (
    MODEL_NAME,
    MODEL_VERSION,
    RELEASE_STAGE,
    RELEASE_STATE,
    RISK_TIER,
    AWAITING_ROLES,
    GOVERNMENT_WINDOW_ENDS_AT,
    SUBMITTED_BY,
    AWAITING_SINCE,
    RELEASE_OUTCOME,
)

#: What the release workflow keeps current at every change, in the order it upserts them; the
#: others are set once, at the start (gatekeeper.release_start).
KEPT_CURRENT: tuple[SearchAttributeKey[Any], ...] = (
    RELEASE_STAGE,
    RELEASE_STATE,
    AWAITING_ROLES,
    GOVERNMENT_WINDOW_ENDS_AT,
    AWAITING_SINCE,
    RELEASE_OUTCOME,
)
#: What releases started before AwaitingSince and ReleaseOutcome existed keep current (their
#: histories replay only with the same upserts).
KEPT_CURRENT_BEFORE_14 = KEPT_CURRENT[:4]


def current_values(status: ReleaseStatus, *, issue_14: bool = True) -> dict[str, Any]:
    """The kept-current attributes' values for ``status`` (None: unset), by name.

    ``issue_14``: the release publishes AwaitingSince and ReleaseOutcome, and a window cleared
    early ends, for ``GovernmentWindowEndsAt``, when it was cleared (not at its extended date).
    """
    awaiting = status.awaiting
    gov = status.government
    ends: datetime | None = gov.window_ends_at
    values: dict[str, Any] = {
        RELEASE_STAGE.name: status.stage or "",
        RELEASE_STATE.name: status.state.value,
        AWAITING_ROLES.name: list(awaiting.roles) if awaiting else [],
        GOVERNMENT_WINDOW_ENDS_AT.name: ends,
    }
    if not issue_14:
        return values
    if gov.window_closed_at is not None and ends is not None and gov.window_closed_at < ends:
        values[GOVERNMENT_WINDOW_ENDS_AT.name] = gov.window_closed_at
    values[AWAITING_SINCE.name] = awaiting.since if awaiting else None
    values[RELEASE_OUTCOME.name] = status.state.value if status.state.terminal else None
    return values


def started_values(start: TypedSearchAttributes) -> dict[str, Any]:
    """The kept-current attributes' values as a workflow started with ``start`` has them, in the
    terms of :func:`current_values` (unset: None). An unset ``AwaitingRoles`` is no roles and an
    unset ``ReleaseStage`` no stage (``""``): readers take them so (gatekeeper.release_list), so
    a release need not upsert them before it has a stage or awaits anyone."""
    values: dict[str, Any] = {}
    for key in KEPT_CURRENT:
        value = start.get(key)
        if value is None and key.name == AWAITING_ROLES.name:
            value = []
        elif value is None and key.name == RELEASE_STAGE.name:
            value = ""
        values[key.name] = list(value) if isinstance(value, list) else value
    return values


#: ``NAME=Type`` pairs in the form ``temporal server start-dev --search-attribute`` takes.
_CLI_TYPE = {
    "KEYWORD": "Keyword",
    "KEYWORD_LIST": "KeywordList",
    "DATETIME": "Datetime",
}


def dev_server_flags() -> list[str]:
    """Flags that make ``temporal server start-dev`` register every attribute at boot."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_CLI_TYPE[key.indexed_value_type.name]}"]
    return flags

"""Custom search attributes operators filter releases by, in the Temporal UI and ``gatekeeper``.

They must be registered on the namespace before any worker runs: a workflow that upserts an
unregistered attribute does not fail, its task retries forever. ``gatekeeper dev``, the test
environments and the compose stack all register :data:`ALL` from here.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

MODEL_NAME = SearchAttributeKey.for_keyword("ModelName")
MODEL_VERSION = SearchAttributeKey.for_keyword("ModelVersion")
RELEASE_STAGE = SearchAttributeKey.for_keyword("ReleaseStage")
RELEASE_STATE = SearchAttributeKey.for_keyword("ReleaseState")
RISK_TIER = SearchAttributeKey.for_keyword("RiskTier")
AWAITING_ROLES = SearchAttributeKey.for_keyword_list("AwaitingRoles")
GOVERNMENT_WINDOW_ENDS_AT = SearchAttributeKey.for_datetime("GovernmentWindowEndsAt")
SUBMITTED_BY = SearchAttributeKey.for_keyword("SubmittedBy")

ALL: tuple[SearchAttributeKey[Any], ...] = (
    MODEL_NAME,
    MODEL_VERSION,
    RELEASE_STAGE,
    RELEASE_STATE,
    RISK_TIER,
    AWAITING_ROLES,
    GOVERNMENT_WINDOW_ENDS_AT,
    SUBMITTED_BY,
)

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

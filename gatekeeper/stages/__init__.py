"""Stage kinds, one module each, registered by :class:`~gatekeeper.models.enums.StageKind`.

Each module holds everything about its kind (see :mod:`gatekeeper.stages.base`): the coroutine
the workflow runs, its transitions on the ledger, its policy checks and how it reads in
``policy show`` and the dossier. Adding a kind is one module plus one line in :data:`KINDS`
(with its ``StageKind`` value and its policy model in :mod:`gatekeeper.models.policy`).
"""

from __future__ import annotations

from gatekeeper.models.enums import StageKind
from gatekeeper.models.policy import Stage
from gatekeeper.stages import (
    access_grant,
    approval_gate,
    government_submission,
    government_window,
    launch,
    waiting_period,
)
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec

KINDS: dict[StageKind, StageKindSpec] = {
    spec.kind: spec
    for spec in (
        approval_gate.SPEC,
        government_submission.SPEC,
        government_window.SPEC,
        access_grant.SPEC,
        launch.SPEC,
        waiting_period.SPEC,
    )
}


def kind_of(stage: Stage) -> StageKindSpec:
    """The registered kind of ``stage`` (every ``StageKind`` has one: a test checks it)."""
    return KINDS[stage.kind]


def leaves_when(stage: Stage) -> str:
    """One sentence on what makes ``stage`` finish, for people reading a pipeline."""
    return kind_of(stage).leaves_when(stage)


async def run_stage(host: StageHost, stage: Stage) -> str:
    """Run ``stage`` on ``host`` until it may finish; the note its record keeps."""
    return await kind_of(stage).run(host, stage)


def check_stage(ctx: CheckContext, index: int, stage: Stage) -> bool:
    """Report ``stage``'s problems; whether a quorum it has is workable."""
    return kind_of(stage).check(ctx, index, stage)


__all__ = [
    "KINDS",
    "CheckContext",
    "StageHost",
    "StageKindSpec",
    "check_stage",
    "kind_of",
    "leaves_when",
    "run_stage",
]

"""What every stage kind is made of, and what it may ask of the workflow that runs it.

A stage kind is one module under :mod:`gatekeeper.stages` that provides a :class:`StageKindSpec`:

- ``run(host, stage) -> note``: the coroutine that drives the stage until it may finish (the
  note is what the stage record says when it completes). It talks to Temporal only through the
  :class:`StageHost` the workflow hands it: the clock, commits, durable waits, activities.
- its transitions: plain functions taking the :class:`~gatekeeper.ledger.state.Ledger` (no
  Temporal), beside the coroutine;
- ``check(ctx, index, stage)``: the policy rules of the kind, reported into a
  :class:`CheckContext` (``gatekeeper policy check``, ``policy install``, the worker);
- ``leaves_when(stage)``: one sentence on what finishes the stage, as people read it
  (``gatekeeper policy show``, the dossier's policy section; its title is ``stage.label``).

The registry (:data:`gatekeeper.stages.KINDS`) maps each :class:`~gatekeeper.models.enums.StageKind`
to its spec; the workflow dispatches through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from gatekeeper.models.base import Model, format_duration
from gatekeeper.models.enums import StageKind
from gatekeeper.models.policy import Policy
from gatekeeper.yamlfile import FieldPath

if TYPE_CHECKING:
    from gatekeeper.ledger.state import Ledger
    from gatekeeper.models.partners import EligiblePartners, PartnerList
    from gatekeeper.models.policy import AccessGrantStage

R = TypeVar("R", bound=Model)

#: Problems found in a policy: the field's path and the one-line message.
Findings = list[tuple[FieldPath, str]]


class PartnerSteps(Protocol):
    """The steps of a partner list the government approves entry by entry, around its grants."""

    def propose_partners(
        self, stage: AccessGrantStage, eligible: EligiblePartners, now: datetime
    ) -> PartnerList: ...

    def partners_granted(self, stage_id: str, partner_ids: list[str]) -> None: ...

    def settle_partner_list(self, stage_id: str, now: datetime) -> None: ...

    def await_partner_list(self, stage_id: str, now: datetime) -> None: ...


class StageHost(Protocol):
    """What a stage's coroutine may ask of the workflow running it (``ModelReleaseWorkflow``).

    Everything that touches Temporal is here: the coroutine itself only reads and changes the
    ledger, so the order of commands (activities, timers, search-attribute upserts) is the order
    of the calls it makes on its host.
    """

    @property
    def ledger(self) -> Ledger:
        """The release's ledger."""
        ...

    @property
    def partners(self) -> PartnerSteps:
        """The partner list's steps (``access_grant`` with ``government_approves_partners``)."""
        ...

    def now(self) -> datetime:
        """The pipeline's clock (the deadline itself in the activation its timer fired in)."""
        ...

    def commit(self) -> None:
        """Send what the ledger wants said, publish the status, wake waiting coroutines."""
        ...

    async def sleep_until_change(self, clocks: dict[str, datetime | None]) -> str | None:
        """Sleep until a change or the earliest clock (a durable timer named by its key);
        return the name of the clock whose timer fired, or None if a change woke the stage."""
        ...

    async def until_unblocked(self, purpose: str, *, suspended_blocks: bool) -> None:
        """Wait while the release is held (or, with ``suspended_blocks``, suspended)."""
        ...

    async def find_orders(self, purpose: str) -> None:
        """Read the orders covering the release's model from the registry and record those it
        does not hold yet (before granting partner access and before launching)."""
        ...

    async def execute(
        self, activity: str, request: Model, result_type: type[R], *, summary: str
    ) -> R:
        """Run ``activity`` with its timeouts and retry policy, under ``summary``."""
        ...

    def set_launching(self, launching: bool) -> None:
        """Mark the launch as being published (operators' hold and withdraw wait meanwhile)."""
        ...


#: A stage's coroutine: drives the stage on its host; returns the stage record's note.
Run = Callable[[StageHost, Any], Awaitable[str]]


@dataclass
class CheckContext:
    """What a kind's policy check reads and where it reports.

    ``people`` is the roster's roles by person (:func:`gatekeeper.rules.roles_by_person`).
    """

    policy: Policy
    people: Mapping[str, Collection[str]]
    out: Findings = field(default_factory=list)

    @property
    def held_roles(self) -> set[str]:
        return {role for roles in self.people.values() for role in roles}

    def add(self, path: FieldPath, message: str) -> None:
        self.out.append((path, message))


@dataclass(frozen=True)
class StageKindSpec:
    """One stage kind: its policy model, coroutine, policy check and description."""

    kind: StageKind
    #: The pydantic model of the stage in a policy (a member of ``models.policy.Stage``).
    model: type[Model]
    run: Run
    #: Report the kind's problems at ``stages[index]``; return whether a quorum it has is
    #: workable (True when it has none), for the policy-wide distinct-approvers check.
    check: Callable[[CheckContext, int, Any], bool]
    #: One sentence on what makes the stage finish.
    leaves_when: Callable[[Any], str]


def show(value: timedelta) -> str:
    """A duration as policy problems quote it (negative ones with their sign)."""
    return "-" + format_duration(-value) if value < timedelta(0) else format_duration(value)

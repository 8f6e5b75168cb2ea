"""Access orders: what the registry stores, what ``AccessOrderWorkflow`` takes, sends and answers.

Everything here is plain JSON and free of SQLAlchemy and Temporal, so the workflow sandbox, the
registry, the activities and the CLI share one definition. An order names models (or ``*``), a
scope (``foreign_persons``, ``everyone`` or ``jurisdiction:<code>``) and exemptions; applying it
suspends access, exemptions give named partners (and all their staff) access back, and a lift
restores access once the safeguards the order requires are attested.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from gatekeeper.ids import order_workflow_id
from gatekeeper.models.base import (
    MAX_LIST,
    MAX_PARTNERS,
    MAX_SAFEGUARDS,
    Identifier,
    Model,
    NonEmptyText,
    ShortText,
    Text,
)
from gatekeeper.models.messages import AccessRestoreRequest, AccessSuspensionRequest
from gatekeeper.statements import Binding, RequestSignature

_CODE = r"[a-z0-9][a-z0-9._-]{0,63}"
_SCOPE = re.compile(rf"^(foreign_persons|everyone|jurisdiction:{_CODE})$")
_MODEL = re.compile(rf"^(\*|{_CODE})$")

#: An order naming this covers every model.
ALL_MODELS = "*"


def _normalise_scope(value: object) -> object:
    # A bare code is a jurisdiction (as AccessSuspensionRequest.scope writes it).
    if isinstance(value, str):
        text = value.strip().lower()
        if text and text not in ("foreign_persons", "everyone") and ":" not in text:
            return f"jurisdiction:{text}"
        return text
    return value


def _check_scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise ValueError("scope must be foreign_persons, everyone or jurisdiction:<code>")
    return value


def _check_models(value: list[str]) -> list[str]:
    for name in value:
        if not _MODEL.match(name):
            raise ValueError(f"{name!r} is not a model name or '*'")
    if ALL_MODELS in value:
        return [ALL_MODELS]
    return sorted(set(value))


def _unique(value: list[str]) -> list[str]:
    repeated = sorted(name for name, n in Counter(value).items() if n > 1)
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return value


#: ``foreign_persons``, ``everyone`` or ``jurisdiction:<code>`` (a bare code means a jurisdiction).
OrderScope = Annotated[str, BeforeValidator(_normalise_scope), AfterValidator(_check_scope)]
#: Model names an order covers; ``["*"]`` covers every model.
OrderModels = Annotated[
    list[str], Field(min_length=1, max_length=MAX_LIST), AfterValidator(_check_models)
]
#: Order ids are short enough that ``access-order-<id>`` is still an identifier.
OrderId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$", min_length=1, max_length=48),
]
#: Partner ids named once each.
PartnerIds = Annotated[
    list[Identifier], Field(min_length=1, max_length=MAX_PARTNERS), AfterValidator(_unique)
]


def order_actor(order_id: str) -> str:
    """Who the order's updates to releases are from (releases accept ``access-order*``)."""
    return order_workflow_id(order_id)


def covers_model(models: list[str], model: str) -> bool:
    return ALL_MODELS in models or model in models


# --- the registry's view --------------------------------------------------------------------


class OrderExemption(Model):
    """Named partners (and all their staff) exempt from an order for some or all of its models."""

    partners: list[Identifier] = Field(min_length=1, max_length=MAX_PARTNERS)
    models: OrderModels = Field(default_factory=lambda: [ALL_MODELS])
    by: Identifier
    at: datetime
    reason: Text = ""
    reference: ShortText = ""
    #: The signed statement of the ``exempt`` request (``gatekeeper.signed_requests``).
    attestation: dict[str, Any] | None = None

    def exempts(self, partner_id: str, model: str) -> bool:
        return partner_id in self.partners and covers_model(self.models, model)


class AccessOrder(Model):
    """An export-control style order restricting access to models, as the registry holds it."""

    order_id: Identifier
    models: OrderModels
    scope: OrderScope
    exempt_partners: list[Identifier] = Field(default_factory=list)
    required_safeguards: list[ShortText] = Field(default_factory=list)
    reason: Text = ""
    issued_by: Identifier
    issued_at: datetime
    status: Literal["active", "lifted"] = "active"
    lifted_at: datetime | None = None
    lifted_by: Identifier | None = None
    lift_reason: Text = ""
    safeguards: list[ShortText] = Field(
        default_factory=list, description="safeguards in place when the order was lifted"
    )
    exemptions: list[OrderExemption] = Field(
        default_factory=list, description="exemptions granted after the order was issued"
    )

    def names(self, model: str) -> bool:
        """Whether the order covers ``model`` (by name, or as every model)."""
        return covers_model(self.models, model)

    def exempt_for(self, model: str) -> list[str]:
        """Every partner exempt from this order for ``model``, sorted."""
        partners = set(self.exempt_partners)
        for exemption in self.exemptions:
            if covers_model(exemption.models, model):
                partners.update(exemption.partners)
        return sorted(partners)


class ApplyOrderRequest(Model):
    """Record an order and suspend the grants it covers. Idempotent by ``order_id``."""

    order_id: Identifier
    models: OrderModels
    scope: OrderScope
    exempt_partners: list[Identifier] = Field(default_factory=list)
    required_safeguards: list[ShortText] = Field(
        default_factory=list, description="safeguards a lift must confirm"
    )
    reason: NonEmptyText
    issued_by: Identifier
    issued_at: datetime


class ApplyOrderResult(Model):
    order: AccessOrder
    suspended: list[str] = Field(default_factory=list, description="grant ids this order suspended")
    affected_releases: list[Identifier] = Field(
        default_factory=list, description="releases holding unrevoked grants for the order's models"
    )


class ExemptOrderRequest(Model):
    """Exempt partners from an active order. Idempotent by ``idempotency_key``."""

    idempotency_key: ShortText
    order_id: Identifier
    partners: PartnerIds
    models: OrderModels = Field(default_factory=lambda: [ALL_MODELS])
    by: Identifier
    reason: Text = ""
    reference: ShortText = ""
    at: datetime


class ExemptOrderResult(Model):
    order: AccessOrder
    restored: list[str] = Field(default_factory=list, description="grant ids active again")


class LiftOrderRequest(Model):
    """Lift an order and restore the grants it suspended. Idempotent by ``order_id``."""

    order_id: Identifier
    lifted_by: Identifier
    safeguards: list[ShortText] = Field(default_factory=list)
    reason: NonEmptyText
    lifted_at: datetime


class LiftOrderResult(Model):
    order: AccessOrder
    restored: list[str] = Field(default_factory=list, description="grant ids active again")
    still_suspended: list[str] = Field(
        default_factory=list, description="grant ids another active order keeps suspended"
    )
    affected_releases: list[Identifier] = Field(default_factory=list)


# --- the order file and the workflow's messages ----------------------------------------------


class OrderSpec(Model):
    """An order as an operator writes it (``gatekeeper access order apply FILE``)."""

    order_id: OrderId
    models: OrderModels
    scope: OrderScope
    exempt_partners: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_PARTNERS,
        description="partners exempt for every model the order names",
    )
    required_safeguards: list[ShortText] = Field(
        default_factory=list,
        max_length=MAX_SAFEGUARDS,
        description="safeguards a lift must attest, e.g. a new classifier",
    )
    reason: NonEmptyText
    reference: ShortText = Field(default="", description="the government's letter or docket")


class AccessOrderInput(OrderSpec):
    """The input of ``AccessOrderWorkflow``: the order and the person applying it, who signs it
    (``gatekeeper.signed_requests``: action ``apply_order``, bound to the order id)."""

    issued_by: Identifier
    signature: RequestSignature | None = None


class SignedRequestCheck(Model):
    """What ``check_signed_request`` checks: a request as sent and the worker's binding."""

    action: str = Field(max_length=64)
    request: dict[str, Any]
    expected: Binding
    max_age_seconds: float = Field(gt=0)


class OrderExemptionRequest(Model):
    """``exempt``: named partners and their staff regain access for some of the order's models."""

    by: Identifier
    partners: PartnerIds
    models: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="models of the order the exemption covers; empty = all",
    )
    reason: NonEmptyText
    reference: ShortText = ""
    signature: RequestSignature | None = None


class OrderLiftRequest(Model):
    """``lift``: the order ends; ``safeguards`` must include every one the order requires."""

    by: Identifier
    safeguards: list[ShortText] = Field(default_factory=list, max_length=MAX_SAFEGUARDS)
    reason: NonEmptyText
    reference: ShortText = ""
    signature: RequestSignature | None = None

    @model_validator(mode="after")
    def _distinct(self) -> OrderLiftRequest:
        _unique(self.safeguards)
        return self


UpdateName = Literal["suspend_access", "restore_access"]
#: ``unanswered``: no answer in time (is the release's worker running?); the order sends again.
#: ``not_suspended``: a release the lift's sweep found that the order never suspended (it
#: started after the order and did not hold it): nothing to restore, and not a failure.
AckOutcome = Literal["pending", "acknowledged", "ended", "refused", "unanswered", "not_suspended"]
OUTCOMES: tuple[AckOutcome, ...] = (
    "pending",
    "acknowledged",
    "ended",
    "refused",
    "unanswered",
    "not_suspended",
)


class ReleaseUpdate(Model):
    """One update for one running release: exactly one of ``suspend`` and ``restore``."""

    release_id: Identifier
    model: Identifier
    suspend: AccessSuspensionRequest | None = None
    restore: AccessRestoreRequest | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> ReleaseUpdate:
        if (self.suspend is None) == (self.restore is None):
            raise ValueError("a release update carries exactly one of suspend and restore")
        return self

    @property
    def name(self) -> UpdateName:
        return "suspend_access" if self.suspend is not None else "restore_access"


class ReleaseAck(Model):
    """What a release answered to the latest update the order sent it."""

    release_id: Identifier
    model: Identifier
    update: UpdateName
    outcome: AckOutcome = "pending"
    state: str = Field(default="", description="the release's state after the update")
    stage: str = Field(default="", description="the release's stage after the update")
    detail: str = ""
    at: datetime | None = None


class AffectedReleasesRequest(Model):
    order_id: Identifier
    models: OrderModels


class AffectedRelease(Model):
    release_id: Identifier
    model: Identifier


class AffectedReleases(Model):
    releases: list[AffectedRelease] = Field(default_factory=list)


class ReleaseUpdateBatch(Model):
    """Updates the ``send_release_updates`` activity delivers, a bounded number at a time."""

    order_id: Identifier
    updates: list[ReleaseUpdate] = Field(min_length=1)
    answer_within: float = Field(
        default=30.0, gt=0, description="seconds a release has to answer before it is unanswered"
    )


class ReleaseUpdateResult(Model):
    acks: list[ReleaseAck] = Field(default_factory=list)


#: ``failed`` only when the registry refused the order itself (e.g. its id was used before).
OrderState = Literal["applying", "active", "lifting", "lifted", "failed"]

#: Exemptions one order takes after it is issued (each is stored in its history).
MAX_EXEMPTIONS = 100


class OrderUpdateResult(Model):
    """What ``exempt`` answers: the outcome in one line and the order's state, not the whole
    order (callers query ``get_status``)."""

    message: str
    order_id: Identifier
    state: OrderState
    exemptions: int


class OrderStatus(Model):
    """The order as ``get_status`` returns it: where it is and what every release answered."""

    order: AccessOrderInput
    state: OrderState = "applying"
    issued_at: datetime
    first_run_id: str = Field(
        default="", description="the order workflow's first run id: what exempt and lift bind"
    )
    officers: list[Identifier] | None = Field(
        default=None,
        description="who may exempt and lift (the installed default policy's people with the "
        "export_control_officer role when the order was applied); None: orders applied before "
        "this rule",
    )
    lift_attestation: dict[str, Any] | None = None
    applied_at: datetime | None = None
    lifted_at: datetime | None = None
    lifted_by: Identifier | None = None
    lift_reason: str = ""
    safeguards: list[str] = Field(default_factory=list)
    exemptions: list[OrderExemption] = Field(default_factory=list)
    grants_suspended: int = Field(default=0, description="registry grants suspended org-wide")
    grants_restored: int = 0
    releases: dict[str, ReleaseAck] = Field(
        default_factory=dict, description="running releases by id, with their latest answer"
    )
    sweeps: int = Field(default=0, description="visibility queries run for affected releases")
    redeliveries: int = Field(default=0, description="rounds of sending to unanswered releases")
    failure: str = ""

    def counts(self) -> dict[str, int]:
        """How many releases are in each outcome of their latest update."""
        found = Counter(ack.outcome for ack in self.releases.values())
        return {outcome: found.get(outcome, 0) for outcome in OUTCOMES}

    def exempt_for(self, model: str) -> list[str]:
        partners = set(self.order.exempt_partners)
        for exemption in self.exemptions:
            if covers_model(exemption.models, model):
                partners.update(exemption.partners)
        return sorted(partners)

"""The release policy as data: roster, cohorts, an ordered pipeline of stages, notification routing.

Structure lives here; cross-field rules (a quorum nobody on the roster can meet, a route to an
unknown role) are checked by :func:`gatekeeper.policy.check_policy`, which can name the YAML line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from gatekeeper.models.base import Duration, Identifier, IdOrWildcard, Model, ShortText, Text
from gatekeeper.models.enums import (
    CoveredDesignation,
    NotificationEvent,
    StageKind,
    Surface,
    VettingTier,
)

ALL_DESIGNATIONS = list(CoveredDesignation)
#: The voluntary standard's ceiling on the government testing window.
MAX_GOVERNMENT_WINDOW = timedelta(days=30)


#: The release updates a policy may let a gateway attest (``gateway_attestation``): every signed
#: update of a release (``gatekeeper.signed_requests.ACTOR_FIELDS`` less the access orders'),
#: or ``*``.
GatewayAction = Literal[
    "*",
    "approve",
    "reject",
    "request_changes",
    "amend",
    "record_government_response",
    "hold",
    "resume",
    "withdraw",
    "delegate",
    "revoke_delegation",
    "suspend_access",
    "restore_access",
    "approve_partners",
    "attest_authorship",
]

#: How long a signed request counts after it was signed, unless the policy says otherwise.
DEFAULT_SIGNATURE_MAX_AGE = timedelta(minutes=15)


class Person(Model):
    """Someone on the roster. Their roles decide which gates they may decide."""

    id: Identifier
    name: ShortText = Field(min_length=1)
    email: ShortText | None = None
    organisation: ShortText = ""
    roles: list[Identifier] = Field(min_length=1)
    public_key: ShortText | None = Field(
        default=None, description="base64 of the raw 32-byte Ed25519 public key"
    )


class QuorumRequirement(Model):
    """``count`` distinct people, each approving in one of ``roles``.

    ``{roles: [safety], count: 1}`` is "one safety reviewer"; ``{roles: [safety, security, legal],
    count: 2}`` is "two of the three reviewer roles". A person counts once across a gate's
    requirements, whatever roles they hold.
    """

    roles: list[Identifier] = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=50)

    @model_validator(mode="before")
    @classmethod
    def _role_shorthand(cls, data: object) -> object:
        # `- role: safety` is accepted as shorthand for `- roles: [safety]`.
        if isinstance(data, dict) and "role" in data and "roles" not in data:
            data = dict(data)
            data["roles"] = [data.pop("role")]
        return data

    def describe(self) -> str:
        roles = " or ".join(self.roles)
        return f"{self.count} × {roles}"


class StageBase(Model):
    id: Identifier
    title: ShortText = ""
    applies_to: list[CoveredDesignation] = Field(
        default_factory=lambda: list(ALL_DESIGNATIONS),
        min_length=1,
        description="covered-model designations for which this stage runs; skipped otherwise",
    )

    @property
    def label(self) -> str:
        return self.title or self.id.replace("_", " ").capitalize()


class GateSettings(Model):
    """What makes an approval gate close, and the clocks that watch it."""

    quorum: list[QuorumRequirement] = Field(default_factory=list)
    covers: list[IdOrWildcard] = Field(
        default_factory=lambda: ["*"],
        description="evidence ids or kinds the gate approves ('artifact' for the weights, '*' for all)",
    )
    approval_ttl: Duration | None = None
    reminder_every: Duration | None = None
    escalate_after: Duration | None = None
    escalate_to: list[Identifier] = Field(default_factory=lambda: ["executive"])
    deadline: Duration | None = None
    on_deadline: Literal["reject", "hold"] = "hold"


class ApprovalGateStage(StageBase, GateSettings):
    kind: Literal[StageKind.APPROVAL_GATE] = StageKind.APPROVAL_GATE


class GovernmentSubmissionStage(StageBase):
    kind: Literal[StageKind.GOVERNMENT_SUBMISSION] = StageKind.GOVERNMENT_SUBMISSION
    clearinghouse: Identifier = "default"


class GovernmentWindowStage(StageBase):
    kind: Literal[StageKind.GOVERNMENT_WINDOW] = StageKind.GOVERNMENT_WINDOW
    duration: Duration = MAX_GOVERNMENT_WINDOW
    allow_early_clearance: bool = True
    max_delay: Duration = Field(
        default=timedelta(days=30),
        description="how far past the window's original end a government delay may reach",
    )


class AccessGrantStage(StageBase, GateSettings):
    """Grant vetted cohorts access, wait a minimum period, then (if a quorum is set) a gate."""

    kind: Literal[StageKind.ACCESS_GRANT] = StageKind.ACCESS_GRANT
    cohorts: list[Identifier] = Field(
        default_factory=list, description="policy cohorts this stage may grant; empty means all"
    )
    surfaces: list[Surface] = Field(default_factory=lambda: [Surface.API], min_length=1)
    minimum_period: Duration = timedelta(0)
    government_approves_partners: bool = False


class LaunchStage(StageBase):
    kind: Literal[StageKind.LAUNCH] = StageKind.LAUNCH
    surfaces: list[Surface] = Field(
        default_factory=lambda: [Surface.API, Surface.APP], min_length=1
    )


class WaitingPeriodStage(StageBase):
    """A fixed cooling-off wait before the next stage: nothing to decide, nobody to ask."""

    kind: Literal[StageKind.WAITING_PERIOD] = StageKind.WAITING_PERIOD
    duration: Duration
    reason: ShortText = Field(default="", description="why the release waits (shown meanwhile)")


#: Every stage kind's model (each kind's module is in :mod:`gatekeeper.stages`).
Stage = Annotated[
    ApprovalGateStage
    | GovernmentSubmissionStage
    | GovernmentWindowStage
    | AccessGrantStage
    | LaunchStage
    | WaitingPeriodStage,
    Field(discriminator="kind"),
]


class Cohort(Model):
    """A class of vetted partners the policy may grant early access to."""

    id: Identifier
    title: ShortText = ""
    tiers: list[VettingTier] = Field(min_length=1)
    jurisdictions: list[IdOrWildcard] = Field(
        min_length=1, description="partner jurisdictions allowed (region codes, '*' for any)"
    )


class Recipients(Model):
    roles: list[Identifier] = Field(default_factory=list)
    people: list[Identifier] = Field(default_factory=list)
    cohorts: list[Identifier] = Field(default_factory=list)
    concerned: bool = Field(
        default=False,
        description="also the people the event is about: awaited reviewers, the submitter, "
        "reviewers whose approvals were invalidated",
    )


#: Fields that define what a channel is. They belong to the worker's configuration file.
CHANNEL_DEFINITION_FIELDS = ("url", "secret_env", "smtp_host", "smtp_port", "sender")
#: Why a policy may not define a channel (the message of the refusal).
CHANNELS_ARE_WORKER_CONFIGURATION = (
    "channels are defined in the worker's configuration file (gatekeeper.toml, [channels.<name>]), "
    "not in a policy; a route names them in its channels list"
)


def _refuse_channel_definitions(data: object, fields: tuple[str, ...]) -> None:
    if isinstance(data, dict):
        for name in fields:
            if name in data:
                # "<field>: ..." lets the YAML reader point at the line of that field.
                raise ValueError(f"{name}: {CHANNELS_ARE_WORKER_CONFIGURATION}")


class NotificationRoute(Model):
    """Events, the people and cohorts who hear of them, and the channels (by name) to use.

    A channel name is ``log``, ``outbox`` or one the worker's configuration defines; the worker
    refuses a policy naming a channel it does not have (:func:`gatekeeper.routing.unconfigured_channels`).
    """

    events: list[NotificationEvent | Literal["*"]] = Field(min_length=1)
    to: Recipients
    channels: list[Identifier] = Field(default_factory=lambda: ["outbox"], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_channel_definitions(cls, data: object) -> object:
        _refuse_channel_definitions(data, CHANNEL_DEFINITION_FIELDS)
        return data


#: Channels every worker has without configuring them.
BUILTIN_CHANNELS = ("log", "outbox")


class NotificationPolicy(Model):
    """Who hears about which events, on which channels (by name).

    Channel definitions (URLs, hosts, secrets) are refused: what a channel is belongs to the
    worker. ``channels`` stays as a field that is always empty, so the digest of every policy
    (recorded by running releases and installed versions) is what it was when policies could
    still define channels.
    """

    channels: list[Any] = Field(
        default_factory=list,
        max_length=0,
        description="always empty: channels are defined in the worker's configuration",
    )
    routes: list[NotificationRoute] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _no_channel_definitions(cls, data: object) -> object:
        if isinstance(data, dict):
            if data.get("channels", []) in ([], None):
                data = {**data, "channels": []}
            else:
                _refuse_channel_definitions(data, ("channels",))
            _refuse_channel_definitions(data, CHANNEL_DEFINITION_FIELDS)
        return data

    @property
    def channel_names(self) -> list[str]:
        """Every channel name a route uses, sorted."""
        return sorted({name for route in self.routes for name in route.channels})


class Policy(Model):
    """A complete release policy. A release runs under the snapshot it started with."""

    policy_id: Identifier
    version: ShortText = "1"
    title: ShortText = ""
    description: Text = ""
    roster: list[Person] = Field(min_length=1)
    cohorts: list[Cohort] = Field(default_factory=list)
    stages: list[Stage] = Field(min_length=1)
    notifications: NotificationPolicy = Field(default_factory=NotificationPolicy)
    require_signed_decisions: bool = False
    signature_max_age: Duration = DEFAULT_SIGNATURE_MAX_AGE
    #: A gate closes only when the authorship of every evidence item it covers is attested
    #: (``attest_authorship``, signed by an author or a reviewer), not the submitter's word.
    require_attested_authorship: bool = False
    #: Updates (``approve``, ``reject``...; ``*`` for all) a decision may carry the console's
    #: signature attesting the signed-in single sign-on identity (``gateway`` kind) instead of
    #: the person's passkey or CLI key. Empty (the default): every request is signed by its
    #: person. Never applies to access orders.
    gateway_attestation: list[GatewayAction] = Field(default_factory=list, max_length=30)

    @model_serializer(mode="wrap")
    def _without_new_defaults(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Fields added after releases were recorded are left out while at their default, so
        a recorded policy's sha256 (over its JSON) stays what it was; when set they count."""
        del info
        data: dict[str, Any] = handler(self)
        if not self.require_attested_authorship:
            data.pop("require_attested_authorship", None)
        if not self.gateway_attestation:
            data.pop("gateway_attestation", None)
        return data

    distinct_approvers_across_gates: bool = False

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.roster if p.id == person_id), None)

    def people_with_role(self, role: str) -> list[Person]:
        return [p for p in self.roster if role in p.roles]

    def cohort(self, cohort_id: str) -> Cohort | None:
        return next((c for c in self.cohorts if c.id == cohort_id), None)

    def stage(self, stage_id: str) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

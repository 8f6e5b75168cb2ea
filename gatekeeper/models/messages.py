"""Inputs of the workflow's updates. Every one is plain JSON, so any Temporal client can send it.

Example, from the Temporal CLI::

    temporal workflow update execute -w release-aurora-2 --name approve \
        --input '{"decider": "sam.safety", "role": "safety", "comment": "evals look right"}'
"""

from __future__ import annotations

from pydantic import AwareDatetime, Field, model_validator

from gatekeeper.models.base import (
    MAX_AUTHORS,
    MAX_EVIDENCE,
    MAX_PARTNERS,
    MAX_SAFEGUARDS,
    Identifier,
    Model,
    NonEmptyText,
    Sha256,
    ShortText,
    Text,
)
from gatekeeper.models.enums import GovernmentResponseKind
from gatekeeper.models.spec import EvidenceRef
from gatekeeper.statements import RequestSignature

#: ``signature`` of a request: a registered key's signature over the request's statement
#: (``gatekeeper.statements``); ``None`` only where the worker allows unsigned requests.
SIGNATURE_DESCRIPTION = "a registered key's signature over the request (gatekeeper.statements)"


class DecisionSignature(Model):
    """An Ed25519 signature over the canonical decision payload (see ``gatekeeper.signing``)."""

    signed_at: AwareDatetime
    nonce: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")
    artifact_sha256: Sha256
    value: str = Field(pattern=r"^[A-Za-z0-9+/=_-]{40,200}$")


class DecisionRequest(Model):
    """``approve``, ``reject`` or ``request_changes`` at the current gate."""

    decider: Identifier
    role: Identifier
    stage: Identifier | None = Field(
        default=None,
        description="the stage the decider is deciding; refused if it is no longer current",
    )
    comment: Text = ""
    #: ``DecisionSignature``: the pre-registry form, kept so recorded histories still replay
    #: (a live validator refuses it).
    signature: RequestSignature | DecisionSignature | None = Field(
        default=None, description=SIGNATURE_DESCRIPTION
    )


class AmendRequest(Model):
    """The submitter changes evidence or the artifact digest. Approvals that covered it lapse."""

    by: Identifier
    artifact_sha256: Sha256 | None = None
    artifact_uri: ShortText | None = None
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=MAX_EVIDENCE)
    remove_evidence: list[Identifier] = Field(default_factory=list, max_length=MAX_EVIDENCE)
    note: Text = ""
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)

    @model_validator(mode="after")
    def _changes_something(self) -> AmendRequest:
        if (
            self.artifact_sha256 is None
            and self.artifact_uri is None
            and not self.evidence
            and not self.remove_evidence
            and not self.note
        ):
            raise ValueError("an amend must change evidence or the artifact, or carry a note")
        return self


class GovernmentResponse(Model):
    """What the government said, as recorded by the government liaison."""

    by: Identifier
    kind: GovernmentResponseKind
    delay_until: AwareDatetime | None = None
    concern: Text = ""
    concern_id: Identifier | None = None
    reference: ShortText = Field(default="", description="the government's letter or ticket")
    signature: RequestSignature | DecisionSignature | None = Field(
        default=None, description=SIGNATURE_DESCRIPTION
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> GovernmentResponse:
        kind = self.kind
        if kind is GovernmentResponseKind.DELAY_REQUESTED and self.delay_until is None:
            raise ValueError("delay_requested needs delay_until")
        if kind is not GovernmentResponseKind.DELAY_REQUESTED and self.delay_until is not None:
            raise ValueError(f"delay_until only goes with delay_requested, not {kind.value}")
        if kind is GovernmentResponseKind.CONCERN_RAISED and not self.concern:
            raise ValueError("concern_raised needs the concern's text")
        return self

    def signed_subject(self) -> str:
        """What a signature on this response asserts besides the decision: the delay's date,
        or the concern (its id, else its text)."""
        if self.delay_until is not None:
            return self.delay_until.isoformat()
        return self.concern_id or self.concern


class OperatorRequest(Model):
    """``hold``, ``resume`` or ``withdraw`` by an operator."""

    by: Identifier
    reason: NonEmptyText
    until: AwareDatetime | None = Field(
        default=None, description="hold only: resume by itself at this time"
    )
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)


class DelegationRequest(Model):
    """A reviewer lends one of their roles to another roster member until a time."""

    by: Identifier
    to: Identifier
    role: Identifier
    until: AwareDatetime
    reason: Text = ""
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)


class DelegationRevocation(Model):
    """The delegator takes back a role they lent: it stops counting at once."""

    by: Identifier
    to: Identifier
    role: Identifier
    reason: Text = ""
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)


class AuthorshipAttestation(Model):
    """Who wrote an evidence item, attested by a signature: of an author (``authors == [by]``)
    or of a reviewer of a gate that covers it, never the submitter's word alone."""

    by: Identifier
    evidence_id: Identifier
    authors: list[Identifier] = Field(min_length=1, max_length=MAX_AUTHORS)
    comment: Text = ""
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)


class AccessSuspensionRequest(Model):
    """Sent by an access order (or an operator): suspend this release's access in a scope."""

    order_id: Identifier
    by: Identifier
    scope: Identifier = Field(description="foreign_persons, everyone or a jurisdiction code")
    exempt_partners: list[Identifier] = Field(default_factory=list, max_length=MAX_PARTNERS)
    reason: NonEmptyText
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)


class AccessRestoreRequest(Model):
    order_id: Identifier
    by: Identifier
    safeguards: list[ShortText] = Field(default_factory=list, max_length=MAX_SAFEGUARDS)
    reason: NonEmptyText
    signature: RequestSignature | None = Field(default=None, description=SIGNATURE_DESCRIPTION)

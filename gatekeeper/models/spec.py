"""The release spec: what a release manager submits (a YAML file, see ``examples/``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from gatekeeper.models.base import (
    MAX_AUTHORS,
    MAX_EVIDENCE,
    MAX_LIST,
    Identifier,
    Model,
    Sha256,
    ShortText,
    Text,
)
from gatekeeper.models.enums import CoveredDesignation, EvidenceKind, RiskTier

#: Evidence id used for the model artifact itself when approvals record what they covered.
ARTIFACT_KEY = "artifact"


class ModelRef(Model):
    name: Identifier
    version: ShortText = Field(min_length=1)


class Artifact(Model):
    """The weights (or a manifest of them) being released, pinned by digest."""

    uri: ShortText = Field(min_length=1)
    sha256: Sha256


class EvidenceRef(Model):
    """One document a gate looks at, pinned by digest. Changing it invalidates approvals."""

    id: Identifier
    kind: EvidenceKind
    uri: ShortText = Field(min_length=1)
    sha256: Sha256
    authors: list[Identifier] = Field(default_factory=list, max_length=MAX_AUTHORS)
    title: ShortText = ""


class ReleaseSpec(Model):
    """Everything a release is about. Immutable except through ``amend``."""

    release_id: Identifier
    model: ModelRef
    artifact: Artifact
    risk_tier: RiskTier
    covered_model: CoveredDesignation
    submitter: Identifier
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=MAX_EVIDENCE)
    partner_cohorts: list[Identifier] = Field(default_factory=list, max_length=MAX_LIST)
    regions: list[Identifier] = Field(default_factory=list, max_length=MAX_LIST)
    description: Text = ""

    @model_validator(mode="after")
    def _unique_evidence(self) -> ReleaseSpec:
        seen: set[str] = set()
        for index, item in enumerate(self.evidence):
            if item.id == ARTIFACT_KEY:
                raise ValueError(f"evidence[{index}].id: '{ARTIFACT_KEY}' is reserved")
            if item.id in seen:
                raise ValueError(f"evidence[{index}].id: '{item.id}' appears twice")
            seen.add(item.id)
        return self

    def digests(self) -> dict[str, str]:
        """Current digest of the artifact and of every evidence item, by id."""
        result = {ARTIFACT_KEY: self.artifact.sha256}
        result.update({e.id: e.sha256 for e in self.evidence})
        return result

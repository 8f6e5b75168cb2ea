"""Builders of registry requests and a small standard world, shared by the registry tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gatekeeper.adapters.registry import (
    AccessRegistry,
    ApplyOrderRequest,
    LiftOrderRequest,
    Partner,
    RegisteredPerson,
)
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier
from gatekeeper.models.io import GrantRequest, RevokeRequest
from gatekeeper.models.policy import Cohort
from gatekeeper.models.spec import ModelRef

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
RELEASE = "aurora-2"
MODEL = "aurora"

#: Invite-only and KYC partners in allied jurisdictions, as the default policy's second cohort.
ALLIED = Cohort(
    id="allied",
    tiers=[VettingTier.INVITE_ONLY, VettingTier.ENTERPRISE_KYC],
    jurisdictions=["us", "gb", "jp"],
)
GOVERNMENT = Cohort(id="government", tiers=[VettingTier.GOVERNMENT_APPROVED], jurisdictions=["us"])


def grant_request(
    *,
    key: str = f"{RELEASE}:vetted_partner_access:grant",
    release: str = RELEASE,
    model: str = MODEL,
    version: str = "2",
    cohorts: list[Cohort] | None = None,
    regions: list[str] | None = None,
    surfaces: list[Surface] | None = None,
    at: datetime = T0,
) -> GrantRequest:
    return GrantRequest(
        idempotency_key=key,
        release_id=release,
        stage="vetted_partner_access",
        model=ModelRef(name=model, version=version),
        cohorts=[ALLIED, GOVERNMENT] if cohorts is None else cohorts,
        regions=["us", "gb", "jp"] if regions is None else regions,
        surfaces=[Surface.API] if surfaces is None else surfaces,
        requested_at=at,
    )


def revoke_request(
    *,
    key: str = f"{RELEASE}:cleanup:revoke",
    release: str = RELEASE,
    grant_ids: list[str] | None = None,
    reason: str = "release withdrawn",
) -> RevokeRequest:
    return RevokeRequest(
        idempotency_key=key,
        release_id=release,
        grant_ids=grant_ids or [],
        reason=reason,
        requested_at=T0 + timedelta(days=1),
    )


def order(
    order_id: str = "ec-1",
    *,
    models: list[str] | None = None,
    scope: str = "foreign_persons",
    exempt: list[str] | None = None,
    safeguards: list[str] | None = None,
    at: datetime = T0 + timedelta(hours=1),
) -> ApplyOrderRequest:
    return ApplyOrderRequest(
        order_id=order_id,
        models=[MODEL] if models is None else models,
        scope=scope,
        exempt_partners=exempt or [],
        required_safeguards=safeguards or [],
        reason="export control: licence required",
        issued_by="olivia.ops",
        issued_at=at,
    )


def lift(order_id: str = "ec-1", *, safeguards: list[str] | None = None) -> LiftOrderRequest:
    return LiftOrderRequest(
        order_id=order_id,
        lifted_by="olivia.ops",
        safeguards=safeguards or [],
        reason="controls lifted after review",
        lifted_at=T0 + timedelta(days=3),
    )


def populate(registry: AccessRegistry) -> None:
    """Four partners and their staff.

    ``acme`` (KYC, us) employs a US person, a foreign person and one of unknown nationality;
    ``globex`` (invite-only, gb) a foreign person located in gb; ``shield`` (government-approved,
    us) a US person; ``initech`` (identity-verified, us) qualifies for no cohort. ``walker`` is a
    US person with no organisation; ``drifter`` works for acme from an unknown location.
    """
    for partner in (
        Partner(id="acme", name="Acme Labs", tier=VettingTier.ENTERPRISE_KYC, jurisdiction="us"),
        Partner(id="globex", tier=VettingTier.INVITE_ONLY, jurisdiction="gb"),
        Partner(id="shield", tier=VettingTier.GOVERNMENT_APPROVED, jurisdiction="us"),
        Partner(id="initech", tier=VettingTier.IDENTITY_VERIFIED, jurisdiction="us"),
    ):
        registry.add_partner(partner)
    us, foreign, unknown = (
        NationalityStatus.US_PERSON,
        NationalityStatus.FOREIGN_PERSON,
        NationalityStatus.UNKNOWN,
    )
    for person in (
        RegisteredPerson(id="alice", partner_id="acme", nationality=us, location="us"),
        RegisteredPerson(id="bruno", partner_id="acme", nationality=foreign, location="us"),
        RegisteredPerson(id="casey", partner_id="acme", nationality=unknown, location="us"),
        RegisteredPerson(id="drifter", partner_id="acme", nationality=us, location=None),
        RegisteredPerson(id="greta", partner_id="globex", nationality=foreign, location="gb"),
        RegisteredPerson(id="sam", partner_id="shield", nationality=us, location="us"),
        RegisteredPerson(id="ivan", partner_id="initech", nationality=us, location="us"),
        RegisteredPerson(id="walker", partner_id=None, nationality=us, location="us"),
    ):
        registry.add_person(person)

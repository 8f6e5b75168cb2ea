"""Granting vetted partners access for a release, and revoking it. Both are idempotent.

A partner is granted when its vetting tier is one of a requested cohort's tiers, its jurisdiction
is one the cohort allows (``*`` for any), and the jurisdiction is among the release's requested
regions (``*`` for any; no regions grant nobody). The first matching cohort is recorded. A grant
is one partner on one surface; granting the same release, partner and surface again returns the
existing grant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gatekeeper.access import OrderFacts, PartnerFacts, order_covers_partner
from gatekeeper.adapters.registry import records
from gatekeeper.adapters.registry.tables import grants, partners
from gatekeeper.canonical import digest_of, sha256_hex
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import Surface
from gatekeeper.models.io import GrantRequest, GrantResult, RevokeRequest, RevokeResult
from gatekeeper.models.partners import EligiblePartners, EligiblePartnersRequest, PartnerCandidate
from gatekeeper.models.policy import Cohort

#: A release's result lists at most this many skipped partners, so workflow history stays small.
MAX_SKIPPED = 100


def match_cohort(
    partner: PartnerFacts, cohorts: Sequence[Cohort], regions: Sequence[str]
) -> tuple[Cohort | None, str]:
    """The first cohort ``partner`` qualifies for, or ``None`` and why not."""
    by_tier = [c for c in cohorts if partner.tier in c.tiers]
    if not by_tier:
        return None, f"{partner.id}: tier {partner.tier.value} is in no requested cohort"
    code = partner.jurisdiction
    allowed = [c for c in by_tier if "*" in c.jurisdictions or code in c.jurisdictions]
    if not allowed:
        names = ", ".join(c.id for c in by_tier)
        return None, f"{partner.id}: jurisdiction {code} is not allowed by cohort {names}"
    if "*" not in regions and code not in regions:
        wanted = ", ".join(regions) or "none"
        return None, f"{partner.id}: jurisdiction {code} is not a requested region ({wanted})"
    return allowed[0], ""


def grant_id_for(key: str) -> str:
    """Grant ids derive from the business key, so a retry names the same grant."""
    return "g-" + sha256_hex(key.encode("utf-8"))[:24]


def eligible_partners(connection: Connection, request: EligiblePartnersRequest) -> EligiblePartners:
    """The partners ``request``'s cohorts admit in its regions, first ``limit`` by id."""
    candidates: list[PartnerCandidate] = []
    skipped: list[str] = []
    for row in connection.execute(sa.select(partners).order_by(partners.c.id)):
        partner = records.partner_facts(row)
        cohort, why_not = match_cohort(partner, request.cohorts, request.regions)
        if cohort is None:
            skipped.append(why_not)
        elif len(candidates) >= request.limit:
            skipped.append(f"{partner.id}: not proposed (the list holds at most {request.limit})")
        else:
            candidates.append(
                PartnerCandidate(
                    partner_id=partner.id,
                    partner_name=row.name,
                    tier=partner.tier,
                    jurisdiction=partner.jurisdiction,
                    cohort=cohort.id,
                )
            )
    return EligiblePartners(candidates=candidates, skipped=_capped(skipped))


def _capped(skipped: list[str]) -> list[str]:
    if len(skipped) <= MAX_SKIPPED:
        return skipped
    rest = len(skipped) - MAX_SKIPPED
    return [*skipped[:MAX_SKIPPED], f"... and {rest} more partners not granted"]


def grant_for_cohorts(connection: Connection, request: GrantRequest) -> GrantResult:
    """Grant every matching partner access on each requested surface (see module docstring).

    With ``request.partners`` set, only those of the matching partners are granted.
    """
    # A request without a partner filter hashes as it did before the field existed, so a
    # release's retried grant still matches the result stored by its first attempt.
    digest = digest_of(request.model_dump(mode="json", exclude={"partners"}))
    if request.partners is not None:
        digest = digest_of(request)
    key = request.idempotency_key
    conflict = f"idempotency key {key!r} was already used for a different grant request"
    done = records.recall(connection, key, "grant", digest, conflict=conflict)
    if done is not None:
        return _result(connection, request.release_id, done["grant_ids"], done["skipped"])

    orders = records.active_orders(connection)
    existing = {
        (row.partner_id, row.surface): row.grant_id
        for row in connection.execute(
            sa.select(grants.c.grant_id, grants.c.partner_id, grants.c.surface).where(
                grants.c.release_id == request.release_id, grants.c.status != "revoked"
            )
        )
    }
    surfaces = list(dict.fromkeys(request.surfaces))
    granted: list[str] = []
    skipped: list[str] = []
    rows: list[dict[str, Any]] = []
    wanted = None if request.partners is None else set(request.partners)
    for row in connection.execute(sa.select(partners).order_by(partners.c.id)):
        partner = records.partner_facts(row)
        if wanted is not None and partner.id not in wanted:
            continue
        cohort, why_not = match_cohort(partner, request.cohorts, request.regions)
        if cohort is None:
            skipped.append(why_not)
            continue
        for surface in surfaces:
            found = existing.get((partner.id, surface.value))
            if found is not None:
                granted.append(found)
                continue
            rows.append(_new_grant(request, partner, cohort, surface, orders))
            granted.append(rows[-1]["grant_id"])
    if rows:
        connection.execute(sa.insert(grants), rows)
    skipped = _capped(skipped)
    result = {"grant_ids": granted, "skipped": skipped}
    records.remember(connection, key, "grant", digest, result, request.requested_at)
    return _result(connection, request.release_id, granted, skipped)


def _new_grant(
    request: GrantRequest,
    partner: PartnerFacts,
    cohort: Cohort,
    surface: Surface,
    orders: Sequence[OrderFacts],
) -> dict[str, Any]:
    grant_key = f"{request.idempotency_key}/{partner.id}/{surface.value}"
    covering = next(
        (o for o in orders if order_covers_partner(o, partner, request.model.name)), None
    )
    reason = f"cohort {cohort.id}: tier {partner.tier.value}, jurisdiction {partner.jurisdiction}"
    if covering is not None:  # fail closed: an order in force suspends a new grant at once
        reason = f"{reason}; suspended by order {covering.order_id} in force when granted"
    return {
        "grant_id": grant_id_for(grant_key),
        "idempotency_key": grant_key,
        "release_id": request.release_id,
        "model_name": request.model.name,
        "model_version": request.model.version,
        "surface": surface.value,
        "partner_id": partner.id,
        "cohort": cohort.id,
        "tiers": sorted(t.value for t in cohort.tiers),
        "jurisdiction": partner.jurisdiction,
        "status": "active" if covering is None else "suspended",
        "reason": reason,
        "order_id": None if covering is None else covering.order_id,
        "granted_at": request.requested_at,
        "changed_at": None,
    }


def _result(
    connection: Connection, release_id: str, grant_ids: list[str], skipped: list[str]
) -> GrantResult:
    # Reading the whole release avoids an IN of thousands of ids (SQLite caps parameters).
    wanted = set(grant_ids)
    by_id = {
        row.grant_id: records.grant_record(row)
        for row in connection.execute(
            sa.select(*records.GRANT_RECORD_COLUMNS)
            .join(partners, partners.c.id == grants.c.partner_id)
            .where(grants.c.release_id == release_id)
        )
        if row.grant_id in wanted
    }
    return GrantResult(grants=[by_id[g] for g in grant_ids if g in by_id], skipped=skipped)


def revoke(connection: Connection, request: RevokeRequest) -> RevokeResult:
    """Revoke the named grants of a release (all unrevoked ones when none are named).

    Raises:
        RegistryError: (not retryable) a named grant is not one of the release's.
    """
    digest = digest_of(request)
    key = request.idempotency_key
    conflict = f"idempotency key {key!r} was already used for a different revoke request"
    done = records.recall(connection, key, "revoke", digest, conflict=conflict)
    if done is not None:
        return RevokeResult(revoked=done["revoked"])
    rows = connection.execute(
        sa.select(grants.c.grant_id, grants.c.status)
        .where(grants.c.release_id == request.release_id)
        .order_by(grants.c.granted_at, grants.c.grant_id)
    ).all()
    named = set(request.grant_ids)
    unknown = sorted(named - {row.grant_id for row in rows})
    if unknown:
        raise RegistryError(
            f"release {request.release_id} has no grant {', '.join(unknown)}", retryable=False
        )
    targets = [
        row.grant_id
        for row in rows
        if row.status != "revoked" and (not named or row.grant_id in named)
    ]
    for ids in records.chunks(targets):
        connection.execute(
            sa.update(grants)
            .where(grants.c.grant_id.in_(ids))
            .values(
                status="revoked",
                reason=request.reason,
                order_id=request.order_id,
                changed_at=request.requested_at,
            )
        )
    records.remember(connection, key, "revoke", digest, {"revoked": targets}, request.requested_at)
    return RevokeResult(revoked=targets)

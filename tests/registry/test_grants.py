"""Grants go to partners whose tier, jurisdiction and region match; once per key; revocable."""

from __future__ import annotations

import pytest

from gatekeeper.access import AccessRule, PartnerFacts
from gatekeeper.adapters.registry import AccessRegistry, Partner
from gatekeeper.adapters.registry.granting import MAX_SKIPPED, match_cohort
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import Surface, VettingTier
from gatekeeper.models.policy import Cohort
from tests.registry.builders import (
    GOVERNMENT,
    RELEASE,
    grant_request,
    order,
    revoke_request,
)


class TestMatching:
    """A partner qualifies by tier, then the cohort's jurisdictions, then the release's regions."""

    def test_the_standard_world_grants_the_vetted_partners_only(
        self, world: AccessRegistry
    ) -> None:
        result = world.grant_for_cohorts(grant_request())

        assert [(g.partner_id, g.cohort, g.surface) for g in result.grants] == [
            ("acme", "allied", Surface.API),
            ("globex", "allied", Surface.API),
            ("shield", "government", Surface.API),
        ]
        assert result.skipped == ["initech: tier identity_verified is in no requested cohort"]
        acme = result.grants[0]
        assert acme.partner_name == "Acme Labs"
        assert acme.jurisdiction == "us"
        assert acme.status == "active"
        assert acme.reason == "cohort allied: tier enterprise_kyc, jurisdiction us"

    def test_a_jurisdiction_outside_the_cohort_is_skipped(self, world: AccessRegistry) -> None:
        us_only = Cohort(id="us-only", tiers=[VettingTier.INVITE_ONLY], jurisdictions=["us"])

        result = world.grant_for_cohorts(grant_request(cohorts=[us_only]))

        assert result.grants == []
        assert "globex: jurisdiction gb is not allowed by cohort us-only" in result.skipped

    def test_a_jurisdiction_outside_the_release_regions_is_skipped(
        self, world: AccessRegistry
    ) -> None:
        result = world.grant_for_cohorts(grant_request(regions=["us"]))

        assert {g.partner_id for g in result.grants} == {"acme", "shield"}
        assert "globex: jurisdiction gb is not a requested region (us)" in result.skipped

    def test_no_regions_grant_nobody(self, world: AccessRegistry) -> None:
        result = world.grant_for_cohorts(grant_request(regions=[]))

        assert result.grants == []
        assert "acme: jurisdiction us is not a requested region (none)" in result.skipped

    def test_the_first_matching_cohort_is_recorded(self, world: AccessRegistry) -> None:
        broad = Cohort(
            id="broad", tiers=[VettingTier.GOVERNMENT_APPROVED], jurisdictions=["us", "gb"]
        )
        result = world.grant_for_cohorts(grant_request(cohorts=[broad, GOVERNMENT]))

        assert [(g.partner_id, g.cohort) for g in result.grants] == [("shield", "broad")]

    def test_a_star_allows_any_jurisdiction_and_any_region(self) -> None:
        # Cohort's schema does not accept '*' yet, so the model is built without validation.
        anywhere = Cohort.model_construct(
            id="anywhere", tiers=[VettingTier.INVITE_ONLY], jurisdictions=["*"]
        )
        partner = PartnerFacts(id="far", tier=VettingTier.INVITE_ONLY, jurisdiction="nz")

        assert match_cohort(partner, [anywhere], ["*"]) == (anywhere, "")
        assert match_cohort(partner, [anywhere], ["us"])[0] is None

    def test_one_grant_per_partner_and_surface(self, world: AccessRegistry) -> None:
        result = world.grant_for_cohorts(
            grant_request(surfaces=[Surface.API, Surface.APP, Surface.API])
        )

        pairs = [(g.partner_id, g.surface) for g in result.grants]
        assert len(pairs) == len(set(pairs)) == 6
        assert len({g.grant_id for g in result.grants}) == 6

    def test_skipped_partners_are_capped(self, registry: AccessRegistry) -> None:
        for i in range(MAX_SKIPPED + 5):
            registry.add_partner(
                Partner(id=f"p{i:03d}", tier=VettingTier.IDENTITY_VERIFIED, jurisdiction="us")
            )

        result = registry.grant_for_cohorts(grant_request())

        assert len(result.skipped) == MAX_SKIPPED + 1
        assert result.skipped[-1] == "... and 5 more partners not granted"


class TestIdempotency:
    """The same key returns the same grants; a key cannot be reused for another request."""

    def test_a_repeated_request_returns_the_same_grants_without_new_rows(
        self, world: AccessRegistry
    ) -> None:
        first = world.grant_for_cohorts(grant_request())
        world.add_partner(Partner(id="late", tier=VettingTier.INVITE_ONLY, jurisdiction="us"))

        again = world.grant_for_cohorts(grant_request())

        assert again == first
        assert len(world.list_grants(RELEASE)) == 3

    def test_a_key_reused_for_another_request_is_refused(self, world: AccessRegistry) -> None:
        world.grant_for_cohorts(grant_request())

        with pytest.raises(RegistryError, match="already used") as caught:
            world.grant_for_cohorts(grant_request(surfaces=[Surface.APP]))

        assert caught.value.retryable is False

    def test_an_overlong_key_is_refused(self, world: AccessRegistry) -> None:
        with pytest.raises(RegistryError, match="longer than 300") as caught:
            world.grant_for_cohorts(grant_request(key="k" * 301))

        assert caught.value.retryable is False
        assert world.list_grants(RELEASE) == []

    def test_a_new_key_for_the_same_release_reuses_unrevoked_grants(
        self, world: AccessRegistry
    ) -> None:
        first = world.grant_for_cohorts(grant_request())

        second = world.grant_for_cohorts(grant_request(key="aurora-2:wave-2:grant"))

        assert [g.grant_id for g in second.grants] == [g.grant_id for g in first.grants]
        assert len(world.list_grants(RELEASE)) == 3


class TestRevoke:
    """Revoking is idempotent; every unrevoked grant when none is named; unknown ids refused."""

    def test_revoke_named_grants(self, world: AccessRegistry) -> None:
        grants = world.grant_for_cohorts(grant_request()).grants

        result = world.revoke(revoke_request(grant_ids=[grants[0].grant_id]))

        assert result.revoked == [grants[0].grant_id]
        statuses = {g.grant_id: (g.status, g.reason) for g in world.list_grants(RELEASE)}
        assert statuses[grants[0].grant_id] == ("revoked", "release withdrawn")
        assert statuses[grants[1].grant_id][0] == "active"
        decision = world.check_access("aurora", "alice")
        assert (decision.rule, decision.grant_id) == (AccessRule.REVOKED, grants[0].grant_id)
        assert world.check_access("aurora", "greta").rule is AccessRule.GRANT

    def test_revoke_all_then_repeat(self, world: AccessRegistry) -> None:
        world.grant_for_cohorts(grant_request())
        first = world.revoke(revoke_request())

        again = world.revoke(revoke_request())

        assert len(first.revoked) == 3
        assert again == first
        assert world.revoke(revoke_request(key="other-key")).revoked == []
        assert {g.status for g in world.list_grants(RELEASE)} == {"revoked"}

    def test_a_grant_of_another_release_is_refused(self, world: AccessRegistry) -> None:
        world.grant_for_cohorts(grant_request())

        with pytest.raises(RegistryError, match="has no grant g-nope") as caught:
            world.revoke(revoke_request(grant_ids=["g-nope"]))

        assert caught.value.retryable is False

    def test_a_revoked_grant_is_granted_anew_by_a_later_request(
        self, world: AccessRegistry
    ) -> None:
        first = world.grant_for_cohorts(grant_request())
        world.revoke(revoke_request())

        again = world.grant_for_cohorts(grant_request(key="aurora-2:regrant"))

        assert {g.status for g in again.grants} == {"active"}
        assert not {g.grant_id for g in again.grants} & {g.grant_id for g in first.grants}
        assert len(world.list_grants(RELEASE)) == 6


class TestGrantsUnderAnOrder:
    """A grant made while an order covers its partner starts suspended (fail closed)."""

    def test_grant_during_an_everyone_order_starts_suspended(self, world: AccessRegistry) -> None:
        world.apply_order(order("halt", scope="everyone", exempt=["shield"]))

        result = world.grant_for_cohorts(grant_request())

        by_partner = {g.partner_id: g for g in result.grants}
        assert by_partner["acme"].status == "suspended"
        assert by_partner["acme"].order_id == "halt"
        assert by_partner["shield"].status == "active"

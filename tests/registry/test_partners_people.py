"""Partners and people are added once, listed in id order, and refer only to what exists."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gatekeeper.adapters.registry import AccessRegistry, Partner, RegisteredPerson
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import NationalityStatus, VettingTier


class TestPartners:
    """A partner has one id, a vetting tier and a jurisdiction; its name defaults to its id."""

    def test_added_partners_list_in_id_order_and_filter_by_tier(
        self, registry: AccessRegistry
    ) -> None:
        registry.add_partner(
            Partner(id="zeta", name="Zeta", tier=VettingTier.INVITE_ONLY, jurisdiction="gb")
        )
        added = registry.add_partner(
            Partner(id="acme", tier=VettingTier.ENTERPRISE_KYC, jurisdiction="us")
        )

        assert added.name == "acme"
        assert [p.id for p in registry.list_partners()] == ["acme", "zeta"]
        assert registry.list_partners(VettingTier.INVITE_ONLY) == [
            Partner(id="zeta", name="Zeta", tier=VettingTier.INVITE_ONLY, jurisdiction="gb")
        ]
        assert registry.list_partners(VettingTier.GOVERNMENT_APPROVED) == []

    def test_a_duplicate_id_is_refused_and_the_first_is_kept(
        self, registry: AccessRegistry
    ) -> None:
        registry.add_partner(Partner(id="acme", tier=VettingTier.INVITE_ONLY, jurisdiction="us"))

        with pytest.raises(RegistryError, match="partner acme already exists") as caught:
            registry.add_partner(
                Partner(id="acme", tier=VettingTier.IDENTITY_VERIFIED, jurisdiction="cn")
            )

        assert caught.value.retryable is False
        assert registry.list_partners()[0].tier is VettingTier.INVITE_ONLY

    def test_ids_and_jurisdictions_must_be_lower_case_identifiers(self) -> None:
        with pytest.raises(ValidationError):
            Partner(id="Acme Labs", tier=VettingTier.INVITE_ONLY, jurisdiction="us")
        with pytest.raises(ValidationError):
            Partner(id="acme", tier=VettingTier.INVITE_ONLY, jurisdiction="U S")

    def test_a_new_tier_is_recorded(self, registry: AccessRegistry) -> None:
        registry.add_partner(Partner(id="acme", tier=VettingTier.INVITE_ONLY, jurisdiction="us"))

        changed = registry.set_partner_tier("acme", VettingTier.IDENTITY_VERIFIED)

        assert changed.tier is VettingTier.IDENTITY_VERIFIED
        assert registry.list_partners()[0].tier is VettingTier.IDENTITY_VERIFIED
        with pytest.raises(RegistryError, match="no partner ghost"):
            registry.set_partner_tier("ghost", VettingTier.INVITE_ONLY)


class TestPeople:
    """A person may belong to a partner that exists; nationality defaults to unknown."""

    def test_people_list_all_or_by_partner(self, registry: AccessRegistry) -> None:
        registry.add_partner(Partner(id="acme", tier=VettingTier.INVITE_ONLY, jurisdiction="us"))
        registry.add_partner(Partner(id="globex", tier=VettingTier.INVITE_ONLY, jurisdiction="gb"))
        registry.add_person(RegisteredPerson(id="bo", partner_id="globex"))
        registry.add_person(
            RegisteredPerson(
                id="al",
                partner_id="acme",
                nationality=NationalityStatus.US_PERSON,
                location="us",
            )
        )
        registry.add_person(RegisteredPerson(id="cy"))

        everyone = registry.list_people()
        assert [p.id for p in everyone] == ["al", "bo", "cy"]
        assert everyone[1].nationality is NationalityStatus.UNKNOWN
        assert everyone[1].location is None
        assert [p.id for p in registry.list_people("acme")] == ["al"]
        assert registry.list_people("globex")[0].partner_id == "globex"

    def test_a_person_of_an_unknown_partner_is_refused(self, registry: AccessRegistry) -> None:
        with pytest.raises(RegistryError, match="no partner ghost") as caught:
            registry.add_person(RegisteredPerson(id="al", partner_id="ghost"))

        assert caught.value.retryable is False
        assert registry.list_people() == []

    def test_a_duplicate_person_is_refused(self, registry: AccessRegistry) -> None:
        registry.add_person(RegisteredPerson(id="al"))

        with pytest.raises(RegistryError, match="person al already exists"):
            registry.add_person(RegisteredPerson(id="al"))

    def test_listing_the_people_of_an_unknown_partner_is_refused(
        self, registry: AccessRegistry
    ) -> None:
        with pytest.raises(RegistryError, match="no partner ghost"):
            registry.list_people("ghost")

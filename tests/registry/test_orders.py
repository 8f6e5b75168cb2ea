"""Access orders deny what their scope covers, spare exempt partners' staff, and lift cleanly."""

from __future__ import annotations

import pytest

from gatekeeper.access import AccessRule
from gatekeeper.adapters.registry import AccessRegistry, ApplyOrderRequest
from gatekeeper.errors import RegistryError
from gatekeeper.models.enums import VettingTier
from tests.registry.builders import RELEASE, grant_request, lift, order


def rules(registry: AccessRegistry, *people: str, model: str = "aurora") -> dict[str, str]:
    return {p: registry.check_access(model, p).rule.value for p in people}


def statuses(registry: AccessRegistry) -> dict[str, str]:
    return {g.partner_id: g.status for g in registry.list_grants(RELEASE)}


@pytest.fixture
def granted(world: AccessRegistry) -> AccessRegistry:
    world.grant_for_cohorts(grant_request())
    return world


class TestForeignPersons:
    """A foreign-persons order denies foreign staff, and staff of unknown nationality fail closed,
    while US persons of the same partner keep access: no grant is suspended."""

    def test_per_person_denial(self, granted: AccessRegistry) -> None:
        result = granted.apply_order(order(scope="foreign_persons"))

        assert result.suspended == []
        assert result.affected_releases == [RELEASE]
        assert rules(granted, "alice", "bruno", "casey", "greta", "sam") == {
            "alice": "grant",
            "bruno": "order",
            "casey": "fail_closed",
            "greta": "order",
            "sam": "grant",
        }
        decision = granted.check_access("aurora", "casey")
        assert decision.order_id == "ec-1"
        assert "nationality is unknown" in decision.reason
        assert set(statuses(granted).values()) == {"active"}

    def test_other_models_are_untouched(self, granted: AccessRegistry) -> None:
        granted.grant_for_cohorts(grant_request(key="other", release="nova-1", model="nova"))

        granted.apply_order(order(scope="foreign_persons", models=["aurora"]))

        assert rules(granted, "bruno", model="nova") == {"bruno": "grant"}

    def test_an_order_for_all_models(self, granted: AccessRegistry) -> None:
        granted.grant_for_cohorts(grant_request(key="other", release="nova-1", model="nova"))

        result = granted.apply_order(order(scope="foreign_persons", models=["*", "aurora"]))

        assert result.order.models == ["*"]
        assert result.affected_releases == [RELEASE, "nova-1"]
        assert rules(granted, "bruno", model="nova") == {"bruno": "order"}


class TestJurisdiction:
    """A jurisdiction order covers people located there and partners based there; an unknown
    location fails closed; the grants of partners based there are suspended."""

    def test_jurisdiction_scope(self, granted: AccessRegistry) -> None:
        result = granted.apply_order(order(scope="jurisdiction:gb"))

        assert statuses(granted) == {"acme": "active", "globex": "suspended", "shield": "active"}
        assert len(result.suspended) == 1
        assert rules(granted, "alice", "greta", "drifter") == {
            "alice": "grant",
            "greta": "order",
            "drifter": "fail_closed",
        }

    def test_a_bare_code_is_a_jurisdiction(self) -> None:
        assert order(scope="GB").scope == "jurisdiction:gb"
        assert order(scope="gb").model_copy().scope == "jurisdiction:gb"


class TestEveryone:
    """An everyone order disables the model for everybody (the fail-closed response)."""

    def test_everyone_scope_suspends_every_grant(self, granted: AccessRegistry) -> None:
        result = granted.apply_order(order(scope="everyone"))

        assert len(result.suspended) == 3
        assert set(statuses(granted).values()) == {"suspended"}
        assert set(rules(granted, "alice", "sam", "walker").values()) == {"order"}

    def test_unknown_people_stay_unknown(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="everyone"))

        assert rules(granted, "nobody") == {"nobody": "unknown_person"}


class TestExemptions:
    """Named partners and all their staff, foreign or unknown, are exempt."""

    def test_exempt_partner_staff_keep_access(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="foreign_persons", exempt=["acme"]))

        assert rules(granted, "alice", "bruno", "casey", "greta") == {
            "alice": "grant",  # a US person: the order never covered her
            "bruno": "exemption",
            "casey": "exemption",
            "greta": "order",
        }
        decision = granted.check_access("aurora", "bruno")
        assert decision.order_id == "ec-1"
        assert decision.grant_id is not None
        assert (
            f"order ec-1 covers foreign persons, but acme is exempt; grant {decision.grant_id}"
            in (decision.reason)
        )

    def test_exempt_partners_keep_their_grants_under_everyone(
        self, granted: AccessRegistry
    ) -> None:
        granted.apply_order(order(scope="everyone", exempt=["globex"]))

        assert statuses(granted) == {"acme": "suspended", "globex": "active", "shield": "suspended"}
        assert rules(granted, "greta", "alice") == {"greta": "exemption", "alice": "order"}


class TestLift:
    """Lifting restores what the order suspended, needs the safeguards it asked for, and leaves
    alone what another order still covers."""

    def test_lift_restores_grants_and_access(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="everyone", safeguards=["classifiers", "misuse-reporting"]))

        result = granted.lift_order(lift(safeguards=["classifiers", "misuse-reporting", "routing"]))

        assert len(result.restored) == 3
        assert result.order.status == "lifted"
        assert result.order.safeguards == ["classifiers", "misuse-reporting", "routing"]
        assert set(statuses(granted).values()) == {"active"}
        assert set(rules(granted, "alice", "bruno", "sam").values()) == {"grant"}
        assert granted.list_grants(RELEASE)[0].reason.startswith("restored: order ec-1 lifted")
        assert granted.list_orders(active_only=True) == []

    def test_lift_without_required_safeguards_is_refused(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="everyone", safeguards=["classifiers"]))

        with pytest.raises(RegistryError, match="only be lifted with safeguards: classifiers") as e:
            granted.lift_order(lift())

        assert e.value.retryable is False
        assert set(statuses(granted).values()) == {"suspended"}
        assert granted.list_orders()[0].status == "active"

    def test_lift_is_idempotent(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="everyone"))
        first = granted.lift_order(lift())

        assert granted.lift_order(lift()) == first
        with pytest.raises(RegistryError, match="already lifted"):
            granted.lift_order(lift(safeguards=["something else"]))

    def test_lift_of_an_unknown_order_is_refused(self, granted: AccessRegistry) -> None:
        with pytest.raises(RegistryError, match="no access order ghost"):
            granted.lift_order(lift("ghost"))

    def test_another_active_order_keeps_grants_suspended(self, granted: AccessRegistry) -> None:
        granted.apply_order(order("first", scope="everyone"))
        granted.apply_order(order("second", scope="jurisdiction:gb"))

        result = granted.lift_order(lift("first"))

        assert statuses(granted) == {"acme": "active", "globex": "suspended", "shield": "active"}
        assert len(result.restored) == 2
        [kept] = result.still_suspended
        assert {g.grant_id: g.order_id for g in granted.list_grants(RELEASE)}[kept] == "second"
        granted.lift_order(lift("second"))
        assert set(statuses(granted).values()) == {"active"}

    def test_the_exemption_letter_sequence(self, granted: AccessRegistry) -> None:
        """Order for two models; a second letter exempts named partners for one of them."""
        granted.grant_for_cohorts(grant_request(key="other", release="nova-1", model="nova"))
        granted.apply_order(order("letter-1", scope="foreign_persons", models=["aurora", "nova"]))
        assert rules(granted, "bruno", model="nova") == {"bruno": "order"}

        granted.lift_order(lift("letter-1"))
        granted.apply_order(order("letter-2a", scope="foreign_persons", models=["aurora"]))
        granted.apply_order(
            order("letter-2b", scope="foreign_persons", models=["nova"], exempt=["acme"])
        )

        assert rules(granted, "bruno", "greta", model="aurora") == {
            "bruno": "order",
            "greta": "order",
        }
        assert rules(granted, "bruno", "greta", model="nova") == {
            "bruno": "exemption",
            "greta": "order",
        }


class TestApplyIdempotency:
    """An order id names one order: re-applying it returns the same result, other terms fail."""

    def test_reapplying_the_same_order(self, granted: AccessRegistry) -> None:
        first = granted.apply_order(order(scope="everyone"))

        assert granted.apply_order(order(scope="everyone")) == first
        assert len(granted.list_orders()) == 1

    def test_reusing_an_order_id_with_other_terms(self, granted: AccessRegistry) -> None:
        granted.apply_order(order(scope="everyone"))

        with pytest.raises(RegistryError, match="different terms") as caught:
            granted.apply_order(order(scope="foreign_persons"))

        assert caught.value.retryable is False

    def test_order_validation(self) -> None:
        with pytest.raises(ValueError, match="scope must be"):
            order(scope="martians:all")
        with pytest.raises(ValueError, match="not a model name"):
            ApplyOrderRequest.model_validate(order().model_dump() | {"models": ["Aurora 2"]})


class TestTier:
    """A partner whose tier no longer qualifies for its grant's cohort is denied."""

    def test_a_downgraded_partner_is_denied(self, granted: AccessRegistry) -> None:
        granted.set_partner_tier("acme", VettingTier.IDENTITY_VERIFIED)

        decision = granted.check_access("aurora", "alice")

        assert decision.rule is AccessRule.TIER
        assert "enterprise_kyc, invite_only" in decision.reason

"""Access activities grant, revoke, apply and lift through the registry, once per key, and fail
the way the workflows expect."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.access import AccessActivities
from gatekeeper.adapters.registry import (
    AccessRegistry,
    ApplyOrderRequest,
    ApplyOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
)
from gatekeeper.models.io import GrantResult, RevokeResult
from tests.registry.builders import RELEASE, grant_request, lift, order, populate, revoke_request


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[AccessRegistry]:
    with AccessRegistry(f"sqlite:///{tmp_path / 'registry.db'}") as opened:
        populate(opened)
        yield opened


@pytest.fixture
def acts(registry: AccessRegistry) -> AccessActivities:
    return AccessActivities(registry)


def failure(activity: Any, payload: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(activity, payload)
    return caught.value


class TestGrantAndRevoke:
    """Grants happen once per key and revokes once per key; plain JSON input is accepted."""

    def test_grant_then_retry_then_revoke(
        self, acts: AccessActivities, registry: AccessRegistry
    ) -> None:
        env = ActivityEnvironment()

        first = env.run(acts.grant_partner_access, grant_request())
        retry = env.run(acts.grant_partner_access, grant_request())
        revoked = env.run(acts.revoke_partner_access, revoke_request())

        assert isinstance(first, GrantResult)
        assert [g.partner_id for g in first.grants] == ["acme", "globex", "shield"]
        assert retry == first
        assert isinstance(revoked, RevokeResult)
        assert sorted(revoked.revoked) == sorted(g.grant_id for g in first.grants)
        assert {g.status for g in registry.list_grants(RELEASE)} == {"revoked"}

    def test_accepts_plain_json_input(self, acts: AccessActivities) -> None:
        payload: Any = grant_request().model_dump(mode="json")  # as an untyped caller sends it

        result = ActivityEnvironment().run(acts.grant_partner_access, payload)

        assert len(result.grants) == 3

    def test_a_request_without_surfaces_fails_for_good(self, acts: AccessActivities) -> None:
        error = failure(acts.grant_partner_access, grant_request(surfaces=[]))

        assert error.type == "InputError"
        assert error.non_retryable is True

    def test_a_reused_key_fails_for_good(self, acts: AccessActivities) -> None:
        ActivityEnvironment().run(acts.grant_partner_access, grant_request())

        error = failure(acts.grant_partner_access, grant_request(regions=["us"]))

        assert error.type == "RegistryError"
        assert error.non_retryable is True
        assert "already used" in str(error)

    def test_revoking_an_unknown_grant_fails_for_good(self, acts: AccessActivities) -> None:
        error = failure(acts.revoke_partner_access, revoke_request(grant_ids=["g-ghost"]))

        assert error.type == "RegistryError"
        assert error.non_retryable is True

    def test_a_locked_database_is_retryable(self, registry: AccessRegistry, tmp_path: Path) -> None:
        # Another process holds the write lock past this registry's busy timeout.
        holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
        with AccessRegistry(registry.url, busy_timeout=0.05) as impatient_registry:
            impatient = AccessActivities(impatient_registry)
            holder.execute("BEGIN IMMEDIATE")
            try:
                error = failure(impatient.grant_partner_access, grant_request())
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            retried = ActivityEnvironment().run(impatient.grant_partner_access, grant_request())

        assert error.type == "RegistryError"
        assert error.non_retryable is False
        assert "database unavailable" in str(error)
        assert len(retried.grants) == 3


class TestOrders:
    """Orders apply and lift once per order id; a lift missing a safeguard fails for good."""

    def test_apply_retry_lift_retry(self, acts: AccessActivities, registry: AccessRegistry) -> None:
        env = ActivityEnvironment()
        env.run(acts.grant_partner_access, grant_request())

        applied = env.run(acts.apply_access_order, order(scope="everyone"))
        again = env.run(acts.apply_access_order, order(scope="everyone"))
        lifted = env.run(acts.lift_access_order, lift())
        lifted_again = env.run(acts.lift_access_order, lift())

        assert isinstance(applied, ApplyOrderResult)
        assert len(applied.suspended) == 3
        assert again == applied
        assert isinstance(lifted, LiftOrderResult)
        assert sorted(lifted.restored) == sorted(applied.suspended)
        assert lifted_again == lifted
        assert registry.check_access("aurora", "alice").allowed

    def test_a_lift_without_required_safeguards_fails_for_good(
        self, acts: AccessActivities
    ) -> None:
        ActivityEnvironment().run(acts.apply_access_order, order(safeguards=["classifiers"]))

        error = failure(acts.lift_access_order, lift())

        assert error.type == "RegistryError"
        assert error.non_retryable is True
        assert "classifiers" in str(error)

    def test_an_invalid_order_fails_for_good(self, acts: AccessActivities) -> None:
        payload: Any = order().model_dump(mode="json") | {"scope": "martians:all"}

        error = failure(acts.apply_access_order, payload)

        assert error.type == "ValidationError"
        assert error.non_retryable is True


class TestPayloads:
    """The order models cross the Temporal boundary as plain JSON and come back equal."""

    @pytest.mark.parametrize(
        "value",
        [order(scope="gb", exempt=["acme"], safeguards=["classifiers"]), lift(safeguards=["x"])],
    )
    def test_round_trip_through_the_pydantic_converter(self, value: BaseModel) -> None:
        converter = pydantic_data_converter.payload_converter
        payloads = converter.to_payloads([value])

        [decoded] = converter.from_payloads(payloads, [type(value)])

        assert decoded == value
        assert isinstance(decoded, ApplyOrderRequest | LiftOrderRequest)

"""Releases started after an order's sweeps, against a real worker, registry and dev server: the
release reads the orders covering its model from the registry itself before granting partner
access and before launching, and is held as one the order reached; the order's lift reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gatekeeper.cli import common, main
from gatekeeper.errors import DecisionRefused
from gatekeeper.ledger.state import SYSTEM
from gatekeeper.ledger.suspensions import FOUND_ACTION
from gatekeeper.models import OperatorRequest, ReleaseState
from gatekeeper.models.orders import (
    ApplyOrderRequest,
    LiftOrderRequest,
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderSpec,
)
from gatekeeper.models.status import ReleaseStatus
from tests import factories
from tests.orders.conftest import PEOPLE, OrderHarness, partner_policy, release_spec, unique
from tests.orders.test_export_control_sequence import Gatekeeper, example

OPERATOR = factories.OPERATOR
SAFEGUARDS = ["misuse-classifier-v2", "misuse-reporting"]


def order(order_id: str, model: str, scope: str = "everyone") -> OrderSpec:
    return OrderSpec.model_validate(
        {
            "order_id": order_id,
            "models": [model],
            "scope": scope,
            "reason": "export rule",
            "required_safeguards": SAFEGUARDS,
        }
    )


def lift(*safeguards: str) -> OrderLiftRequest:
    return OrderLiftRequest(by=OPERATOR, safeguards=list(safeguards), reason="review done")


def held_before(purpose: str) -> Callable[[ReleaseStatus], bool]:
    def held(s: ReleaseStatus) -> bool:
        return s.awaiting is not None and purpose in s.awaiting.what

    return held


async def held_release(orders: OrderHarness, model: str) -> ReleaseStatus:
    """Start a release of ``model`` (partner access first) and wait until it is held before
    granting."""
    started = await orders.start(release_spec(model), partner_policy())
    return await orders.until(
        started.release_id,
        held_before("to grant partner access"),
        what="held before granting partner access",
    )


def grant_statuses(orders: OrderHarness, release_id: str) -> dict[str, str]:
    return {g.partner_id: g.status for g in orders.registry.list_grants(release_id)}


class TestAReleaseStartedAfterAnOrder:
    """An organisation-wide order holds a release started after its sweeps, and its lift
    releases it."""

    async def test_it_is_held_before_granting_until_the_lift(self, orders: OrderHarness) -> None:
        model = unique("aurora")
        order_id = unique("all")
        applied = await orders.orders.apply(order(order_id, model), OPERATOR)
        assert applied.releases == {}  # no release of the model was running

        status = await held_release(orders, model)
        release_id = status.release_id

        assert status.state is ReleaseState.SUSPENDED
        assert status.stage == "vetted_partner_access"
        assert status.awaiting is not None and "operator" in status.awaiting.roles
        assert f"order {order_id}" in status.awaiting.what
        [suspension] = status.active_suspensions()
        assert (suspension.order_id, suspension.scope, suspension.per_person) == (
            order_id,
            "everyone",
            False,
        )
        assert grant_statuses(orders, release_id) == {}  # nothing granted while held
        for person in ("alice", "chen", "pat"):
            assert orders.registry.check_access(model, person).rule.value == "order"
        found = [e for e in await orders.releases.audit(release_id) if e.action == FOUND_ACTION]
        assert [(e.actor, e.details["order_id"]) for e in found] == [(SYSTEM, order_id)]

        # The order never reached it; its lift looks again and restores it.
        lifted = await orders.orders.lift(order_id, lift(*SAFEGUARDS))

        ack = lifted.releases[release_id]
        assert (ack.update, ack.outcome) == ("restore_access", "acknowledged")
        parked = await orders.parked(release_id)
        assert parked.state is ReleaseState.ACTIVE
        assert set(grant_statuses(orders, release_id).values()) == {"active"}
        assert orders.registry.check_access(model, "alice").allowed
        await orders.skip(release_id, 15)
        done = await orders.until(release_id, lambda s: s.state is ReleaseState.LAUNCHED)
        assert done.orders_in_force() == []
        actions = [e.action for e in await orders.releases.audit(release_id)]
        assert actions.count(FOUND_ACTION) == 1
        assert actions.count("access_restored") == 1

    async def test_a_lift_without_the_safeguards_leaves_it_held(self, orders: OrderHarness) -> None:
        model = unique("aurora")
        order_id = unique("all")
        await orders.orders.apply(order(order_id, model), OPERATOR)
        release_id = (await held_release(orders, model)).release_id

        with pytest.raises(DecisionRefused) as refused:
            await orders.orders.lift(order_id, lift(*SAFEGUARDS[:1]))

        assert refused.value.rule == "safeguards_missing"
        status = await orders.releases.status(release_id)
        assert status.state is ReleaseState.SUSPENDED
        assert grant_statuses(orders, release_id) == {}
        await orders.orders.lift(order_id, lift(*SAFEGUARDS))
        assert (await orders.parked(release_id)).state is ReleaseState.ACTIVE

    async def test_exemptions_reach_it_and_a_later_release_reads_them(
        self, orders: OrderHarness
    ) -> None:
        model = unique("aurora")
        order_id = unique("all")
        await orders.orders.apply(order(order_id, model), OPERATOR)
        first = (await held_release(orders, model)).release_id

        await orders.orders.exempt(
            order_id,
            OrderExemptionRequest(by=OPERATOR, partners=["brit-ai"], models=[model], reason="ok"),
        )

        status = await orders.releases.status(first)
        assert status.state is ReleaseState.SUSPENDED
        assert status.active_suspensions()[0].exempt_partners == ["brit-ai"]
        # A release started after the exemption reads the exempt list with the order.
        second = await held_release(orders, model)
        assert second.active_suspensions()[0].exempt_partners == ["brit-ai"]
        assert orders.registry.check_access(model, "chen").allowed is False  # nothing granted

        lifted = await orders.orders.lift(order_id, lift(*SAFEGUARDS))
        assert {lifted.releases[r].outcome for r in (first, second.release_id)} == {"acknowledged"}
        for release_id in (first, second.release_id):
            assert (await orders.parked(release_id)).state is ReleaseState.ACTIVE

    async def test_a_foreign_persons_order_is_recorded_per_person_and_it_goes_on(
        self, orders: OrderHarness
    ) -> None:
        model = unique("aurora")
        order_id = unique("fp")
        await orders.orders.apply(order(order_id, model, "foreign_persons"), OPERATOR)

        started = await orders.start(release_spec(model), partner_policy())
        status = await orders.parked(started.release_id)

        assert status.state is ReleaseState.ACTIVE
        assert [(s.order_id, s.per_person) for s in status.orders_in_force()] == [(order_id, True)]
        assert orders.registry.check_access(model, "alice").allowed  # US staff keep access
        assert orders.registry.check_access(model, "bruno").rule.value == "order"
        lifted = await orders.orders.lift(order_id, lift(*SAFEGUARDS))
        assert lifted.releases[started.release_id].outcome == "acknowledged"
        assert (await orders.releases.status(started.release_id)).orders_in_force() == []

    async def test_a_release_that_never_held_the_order_is_counted_apart(
        self, orders: OrderHarness
    ) -> None:
        model = unique("aurora")
        order_id = unique("all")
        await orders.orders.apply(order(order_id, model), OPERATOR)
        # Waiting at its internal review, it has not reached a point where it reads orders.
        started = await orders.start(release_spec(model), factories.policy())
        await orders.at_stage(started.release_id, "internal_review")
        before = [e.action for e in await orders.releases.audit(started.release_id)]

        lifted = await orders.orders.lift(order_id, lift(*SAFEGUARDS))

        ack = lifted.releases[started.release_id]
        assert (ack.update, ack.outcome) == ("restore_access", "not_suspended")
        assert lifted.counts()["not_suspended"] == 1 and lifted.counts()["refused"] == 0
        assert lifted.state == "lifted"
        status = await orders.releases.status(started.release_id)
        assert (status.state, status.suspensions) == (ReleaseState.ACTIVE, [])
        assert [e.action for e in await orders.releases.audit(started.release_id)] == before


class TestBeforeLaunching:
    """A release reads the orders again before it launches (an order whose sweeps missed it)."""

    async def test_an_order_it_was_never_sent_holds_the_launch(self, orders: OrderHarness) -> None:
        model = unique("aurora")
        started = await orders.start(release_spec(model), partner_policy())
        release_id = started.release_id
        await orders.parked(release_id)
        order_id = unique("missed")
        # Recorded in the registry only: as if the order's sweeps had not seen the release.
        orders.registry.apply_order(
            ApplyOrderRequest(
                order_id=order_id,
                models=[model],
                scope="everyone",
                reason="export rule",
                issued_by=OPERATOR,
                issued_at=datetime.now(UTC),
            )
        )

        await orders.skip(release_id, 15)
        status = await orders.until(release_id, held_before("launch is blocked"))

        assert status.state is ReleaseState.SUSPENDED
        assert f"suspended by order {order_id}" in status.awaiting.what  # type: ignore[union-attr]
        assert status.active_suspensions()[0].order_id == order_id
        assert orders.registry.list_public_launches(model) == []
        orders.registry.lift_order(
            LiftOrderRequest(
                order_id=order_id,
                lifted_by=OPERATOR,
                safeguards=[],
                reason="done",
                lifted_at=datetime.now(UTC),
            )
        )
        await orders.releases.operate(
            release_id, "withdraw", OperatorRequest(by=OPERATOR, reason="test over")
        )
        await orders.until(release_id, lambda s: s.state is ReleaseState.WITHDRAWN)


@pytest.fixture
def gk(orders: OrderHarness, monkeypatch: pytest.MonkeyPatch) -> Gatekeeper:
    if not main.app.registered_groups:
        main._register()
    monkeypatch.setattr(common.console, "width", 200)
    return Gatekeeper(orders)


class TestThroughTheCli:
    """The same as an operator sees it: ``access order apply`` (everyone), a release started
    after it held before granting, ``access check`` denying every person, ``release status``
    awaiting the operator, ``access order lift`` restoring it (and counting a release that never
    held the order apart), then grants and the launch."""

    async def test_apply_then_start_then_lift(
        self, orders: OrderHarness, gk: Gatekeeper, tmp_path: Path
    ) -> None:
        model = unique("aurora")
        order_id = unique("ec-all")
        order_file = example(
            "export-control-order.yaml",
            tmp_path / "order.yaml",
            order_id=order_id,
            models=[model],
            scope="everyone",
        )
        applied = await gk.run("access", "order", "apply", str(order_file), "--as", "olga.ops")
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines()[0].endswith("0 release(s) reached: 0 pending")

        held = await held_release(orders, model)
        waiting = await orders.start(release_spec(model), factories.policy())
        await orders.at_stage(waiting.release_id, "internal_review")

        shown = await gk.run("release", "status", held.release_id, "--json")
        assert shown.returncode == 0, shown.stderr
        view = json.loads(shown.stdout)
        assert view["state"] == "suspended"
        assert "operator" in view["awaiting"]["roles"]
        for person in (p.id for p in PEOPLE):
            assert await gk.check(model, person) in ("deny:order", "deny:fail_closed")
        assert grant_statuses(orders, held.release_id) == {}

        lift_file = example("lift.yaml", tmp_path / "lift.yaml", by="olga.ops")
        lifted = await gk.run("access", "order", "lift", order_id, "--file", str(lift_file))

        assert lifted.returncode == 0, lifted.stderr
        first = lifted.stdout.splitlines()[0]
        assert first.startswith(f"order {order_id} is lifted in ")
        assert first.endswith(
            "; 2 release(s) reached: 0 pending, 1 acknowledged, 1 not_suspended"
        ), first
        await orders.parked(held.release_id)
        assert await gk.check(model, "alice") == "allow:grant"
        assert await gk.check(model, "pat") == "deny:no_grant"
        await orders.skip(held.release_id, 15)
        await orders.until(held.release_id, lambda s: s.state is ReleaseState.LAUNCHED)
        assert await gk.check(model, "pat") == "allow:public"
        assert (await orders.releases.status(waiting.release_id)).suspensions == []

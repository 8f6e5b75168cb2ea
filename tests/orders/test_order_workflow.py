"""AccessOrderWorkflow against real releases, a real registry and the real dev server."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.client import WorkflowUpdateFailedError

from gatekeeper import statements
from gatekeeper.errors import DecisionRefused, OrderExists, OrderNotFound
from gatekeeper.ledger.suspensions import FOUND_ACTION
from gatekeeper.models import OperatorRequest, ReleaseState
from gatekeeper.models.orders import (
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderSpec,
    OrderStatus,
)
from gatekeeper.signed_requests import order_binding
from tests import factories, signing
from tests.orders.conftest import OrderHarness, partner_policy, release_spec, unique

OPERATOR = factories.OPERATOR


def spec(order_id: str, models: list[str], scope: str, **extra: object) -> OrderSpec:
    return OrderSpec.model_validate(
        {"order_id": order_id, "models": models, "scope": scope, "reason": "test order", **extra}
    )


def lift(*safeguards: str) -> OrderLiftRequest:
    return OrderLiftRequest(by=OPERATOR, safeguards=list(safeguards), reason="review done")


async def parked_release(orders: OrderHarness, model: str) -> str:
    status = await orders.start(release_spec(model), partner_policy())
    await orders.parked(status.release_id)
    return status.release_id


async def held_release(orders: OrderHarness, model: str) -> str:
    """A release started after an order covering whole organisations: it finds the order in the
    registry itself and is held before granting partner access."""
    status = await orders.start(release_spec(model), partner_policy())
    await orders.until(
        status.release_id,
        lambda s: s.awaiting is not None and "to grant partner access" in s.awaiting.what,
        what="held before granting partner access",
    )
    return status.release_id


def grant_statuses(orders: OrderHarness, release_id: str) -> dict[str, str]:
    return {g.partner_id: g.status for g in orders.registry.list_grants(release_id)}


class TestOrganisationWideScopes:
    """Scopes that cover whole organisations suspend their grants in the registry too."""

    async def test_a_jurisdiction_order_suspends_that_jurisdictions_partners(
        self, orders: OrderHarness
    ) -> None:
        model = unique("aurora")
        release_id = await parked_release(orders, model)
        order_id = unique("gb")

        status = await orders.orders.apply(spec(order_id, [model], "gb"), OPERATOR)

        assert status.grants_suspended == 1
        assert grant_statuses(orders, release_id) == {
            "acme-labs": "active",
            "brit-ai": "suspended",
            "invited-co": "active",
        }
        assert orders.registry.check_access(model, "chen").rule.value == "order"
        assert orders.registry.check_access(model, "alice").allowed
        release = await orders.releases.status(release_id)
        assert release.state is ReleaseState.SUSPENDED
        assert release.active_suspensions()[0].scope == "gb"

        await orders.orders.lift(order_id, lift())
        assert set(grant_statuses(orders, release_id).values()) == {"active"}
        assert orders.registry.check_access(model, "chen").allowed

    async def test_an_order_for_everyone_suspends_every_grant_of_its_models(
        self, orders: OrderHarness
    ) -> None:
        first, second = unique("aurora"), unique("borealis")
        ids = [await parked_release(orders, first), await parked_release(orders, second)]
        order_id = unique("all")

        status = await orders.orders.apply(spec(order_id, [first, second], "everyone"), OPERATOR)

        assert status.grants_suspended == 6  # three partners on each release
        for release_id in ids:
            assert set(grant_statuses(orders, release_id).values()) == {"suspended"}
        for person in ("alice", "bruno", "chen", "pat"):
            assert orders.registry.check_access(first, person).rule.value == "order"
        status = await orders.orders.lift(order_id, lift())
        assert status.grants_restored == 6
        for release_id in ids:
            assert set(grant_statuses(orders, release_id).values()) == {"active"}


class TestLifeCycle:
    """Apply, exempt and lift are each answered at once, refused when they cannot apply."""

    async def test_an_order_id_is_never_reused(self, orders: OrderHarness) -> None:
        order_id = unique("once")
        await orders.orders.apply(spec(order_id, [unique("m")], "everyone"), OPERATOR)
        with pytest.raises(OrderExists):
            await orders.orders.apply(spec(order_id, [unique("m")], "everyone"), OPERATOR)
        await orders.orders.lift(order_id, lift())

    async def test_an_exemption_for_a_model_the_order_does_not_name_is_refused(
        self, orders: OrderHarness
    ) -> None:
        order_id = unique("ec")
        await orders.orders.apply(spec(order_id, [unique("m")], "foreign_persons"), OPERATOR)
        with pytest.raises(DecisionRefused) as refused:
            await orders.orders.exempt(
                order_id,
                OrderExemptionRequest(
                    by=OPERATOR, partners=["acme-labs"], models=["other"], reason="x"
                ),
            )
        assert refused.value.rule == "unknown_model"
        with pytest.raises(DecisionRefused) as unknown:
            await orders.orders.exempt(
                order_id,
                OrderExemptionRequest(by=OPERATOR, partners=["no-such-partner"], reason="x"),
            )
        assert unknown.value.rule == "exemption_refused"
        assert (await orders.orders.status(order_id)).exemptions == []
        await orders.orders.lift(order_id, lift())

    async def test_a_repeated_exemption_is_refused_and_answers_are_small(
        self, orders: OrderHarness
    ) -> None:
        order_id = unique("ec")
        await orders.orders.apply(spec(order_id, [unique("m")], "foreign_persons"), OPERATOR)
        handle = orders.orders.handle(order_id)
        body = statements.sign_request(
            signing.person_key(OPERATOR),
            action="exempt",
            actor=OPERATOR,
            request={"by": OPERATOR, "partners": ["acme-labs"], "reason": "licensed"},
            binding=order_binding(order_id, (await orders.orders.status(order_id)).first_run_id),
        )
        answer = await handle.execute_update("exempt", body, result_type=dict)
        assert set(answer) == {"message", "order_id", "state", "exemptions"}
        assert answer["exemptions"] == 1 and "acme-labs" in answer["message"]
        with pytest.raises(WorkflowUpdateFailedError) as repeat:
            await handle.execute_update("exempt", body, result_type=dict)
        assert getattr(repeat.value.cause, "type", None) == "unchanged"
        assert len((await orders.orders.status(order_id)).exemptions) == 1
        await orders.orders.lift(order_id, lift())

    async def test_a_lifted_order_takes_nothing_more(self, orders: OrderHarness) -> None:
        order_id = unique("ec")
        await orders.orders.apply(
            spec(order_id, [unique("m")], "everyone", required_safeguards=["classifier"]),
            OPERATOR,
        )
        status = await orders.orders.lift(order_id, lift("classifier", "extra-review"))
        assert status.state == "lifted"
        assert status.safeguards == ["classifier", "extra-review"]
        with pytest.raises(DecisionRefused) as again:
            await orders.orders.lift(order_id, lift("classifier"))
        assert again.value.rule == "order_lifted"
        with pytest.raises(DecisionRefused):
            await orders.orders.exempt(
                order_id, OrderExemptionRequest(by=OPERATOR, partners=["acme-labs"], reason="x")
            )
        assert (await orders.orders.status(order_id)).state == "lifted"
        assert orders.registry.get_order(order_id).status == "lifted"

    async def test_status_of_an_unknown_order(self, orders: OrderHarness) -> None:
        with pytest.raises(OrderNotFound):
            await orders.orders.status(unique("never"))

    async def test_a_malformed_lift_is_refused_before_history(self, orders: OrderHarness) -> None:
        order_id = unique("ec")
        await orders.orders.apply(spec(order_id, [unique("m")], "everyone"), OPERATOR)
        handle = orders.orders.handle(order_id)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "lift", {"by": OPERATOR, "safeguards": "not-a-list", "reason": "x"}
            )
        assert (await orders.orders.status(order_id)).state == "active"
        await orders.orders.lift(order_id, lift())


class TestReleasesReached:
    """Every running release of the named models is reached, and only those."""

    async def test_each_release_of_the_models_answers_and_keeps_its_stage(
        self, orders: OrderHarness
    ) -> None:
        named, other = unique("aurora"), unique("zephyr")
        ids = await asyncio.gather(*(parked_release(orders, named) for _ in range(3)))
        bystander = await parked_release(orders, other)
        order_id = unique("ec")

        # An order covering whole organisations suspends the releases it reaches.
        status = await orders.orders.apply(spec(order_id, [named], "everyone"), OPERATOR)

        assert sorted(status.releases) == sorted(ids)
        assert status.counts()["acknowledged"] == 3
        assert sum(status.counts().values()) == 3
        for release_id in ids:
            release = await orders.releases.status(release_id)
            assert (release.state, release.stage) == (
                ReleaseState.SUSPENDED,
                "vetted_partner_access",
            )
        assert (await orders.releases.status(bystander)).state is ReleaseState.ACTIVE

        # A release started after the order finds it in the registry itself and is held before
        # granting; an exemption for its model sweeps and reaches it with the new exempt list.
        late = await held_release(orders, named)
        status = await orders.orders.exempt(
            order_id, OrderExemptionRequest(by=OPERATOR, partners=["brit-ai"], reason="licensed")
        )
        assert status.releases[late].outcome == "acknowledged"
        late_status = await orders.releases.status(late)
        assert late_status.state is ReleaseState.SUSPENDED
        assert late_status.active_suspensions()[0].exempt_partners == ["brit-ai"]

        status = await orders.orders.lift(order_id, lift())
        assert {a.update for a in status.releases.values()} == {"restore_access"}
        for release_id in [*ids, late]:
            assert (await orders.releases.status(release_id)).state is ReleaseState.ACTIVE
        audit = await orders.releases.audit(late)
        actions = [e.action for e in audit]
        assert actions.count(FOUND_ACTION) == 1
        assert "access_suspended" not in actions  # the order never sent it its suspension
        assert actions.count("access_exemptions_changed") == 1
        assert actions.count("access_restored") == 1

    async def test_a_foreign_persons_order_is_recorded_and_the_release_goes_on(
        self, orders: OrderHarness
    ) -> None:
        model = unique("aurora")
        release_id = await parked_release(orders, model)
        order_id = unique("ec")

        status = await orders.orders.apply(spec(order_id, [model], "foreign_persons"), OPERATOR)

        ack = status.releases[release_id]
        assert (ack.outcome, ack.state, ack.detail) == (
            "acknowledged",
            "active",
            f"order {order_id} recorded: checks deny the foreign persons it covers",
        )
        release = await orders.releases.status(release_id)
        assert release.state is ReleaseState.ACTIVE
        assert release.active_suspensions() == []
        assert [(s.order_id, s.per_person) for s in release.orders_in_force()] == [(order_id, True)]
        # Not suspended, so the minimum period ends and the release launches under the order;
        # checks still deny the foreign persons it covers, public launch or not.
        await orders.skip(release_id, 15)
        await orders.until(release_id, lambda s: s.state is ReleaseState.LAUNCHED)
        assert orders.registry.check_access(model, "pat").rule.value == "public"
        assert orders.registry.check_access(model, "fred").rule.value == "order"
        actions = [e.action for e in await orders.releases.audit(release_id)]
        assert actions.count("access_order_recorded") == 1
        assert "access_suspended" not in actions
        await orders.orders.lift(order_id, lift())
        assert orders.registry.check_access(model, "fred").rule.value == "public"

    async def test_an_exemption_reaches_only_releases_of_the_models_it_names(
        self, orders: OrderHarness
    ) -> None:
        named, other = unique("aurora"), unique("borealis")
        order_id = unique("all")
        await orders.orders.apply(spec(order_id, [named, other], "everyone"), OPERATOR)
        # Both start after the order: neither is reached by the order's own sweeps; each finds
        # the order in the registry itself and is held before granting.
        late_named = await held_release(orders, named)
        late_other = await held_release(orders, other)
        before = [e.action for e in await orders.releases.audit(late_other)]

        status = await orders.orders.exempt(
            order_id,
            OrderExemptionRequest(
                by=OPERATOR, partners=["brit-ai"], models=[named], reason="licensed"
            ),
        )

        assert list(status.releases) == [late_named]
        assert (await orders.releases.status(late_named)).state is ReleaseState.SUSPENDED
        assert (await orders.releases.status(late_named)).active_suspensions()[
            0
        ].exempt_partners == ["brit-ai"]
        untouched = await orders.releases.status(late_other)
        assert untouched.state is ReleaseState.SUSPENDED
        assert [(s.order_id, s.exempt_partners) for s in untouched.suspensions] == [(order_id, [])]
        assert [e.action for e in await orders.releases.audit(late_other)] == before
        # The lift restores both: late_named reached by the exemption, late_other by its sweep.
        lifted = await orders.orders.lift(order_id, lift())
        assert {a.release_id: a.outcome for a in lifted.releases.values()} == {
            late_named: "acknowledged",
            late_other: "acknowledged",
        }
        for release_id in (late_named, late_other):
            assert (await orders.releases.status(release_id)).state is ReleaseState.ACTIVE

    async def test_a_release_that_ended_is_recorded_as_ended(self, orders: OrderHarness) -> None:
        model = unique("aurora")
        release_id = await parked_release(orders, model)
        order_id = unique("ec")
        await orders.orders.apply(spec(order_id, [model], "foreign_persons"), OPERATOR)
        await orders.releases.operate(
            release_id,
            "withdraw",
            OperatorRequest(by=OPERATOR, reason="model retired"),
        )
        await orders.until(release_id, lambda s: s.state is ReleaseState.WITHDRAWN)
        await orders.releases.handle(release_id).result()

        status: OrderStatus = await orders.orders.lift(order_id, lift())

        assert status.releases[release_id].outcome == "ended"

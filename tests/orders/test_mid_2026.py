"""The mid-2026 sequence: two models live, an export-control order on foreign persons, a partial
exemption for named partners on one model, a lift refused until the safeguards are attested,
then restoration. At every step the registry's answer to "who may use what" is asserted whole,
through both the database check (the CLI's) and the in-process checker (serving stacks')."""

from __future__ import annotations

import pytest

from gatekeeper.access import AccessChecker
from gatekeeper.errors import DecisionRefused
from gatekeeper.models import ReleaseState
from gatekeeper.models.orders import OrderExemptionRequest, OrderLiftRequest, OrderSpec
from tests import factories
from tests.orders.conftest import PEOPLE, OrderHarness, partner_policy, release_spec, unique

EVERYONE = [p.id for p in PEOPLE]
SAFEGUARDS = ["misuse-classifier-v2", "restricted-request-routing", "misuse-reporting"]

Table = dict[tuple[str, str], str]


def answers(orders: OrderHarness, checker: AccessChecker, models: list[str]) -> Table:
    """``"allow:rule"`` or ``"deny:rule"`` for every model and person; both paths must agree
    (the checker following the registry's change feed)."""
    checker.update()
    table: Table = {}
    for model in models:
        for person in EVERYONE:
            db = orders.registry.check_access(model, person)
            fast = checker.check(model, person)
            assert (db.allowed, db.rule) == (fast.allowed, fast.rule), (model, person)
            table[(model, person)] = f"{'allow' if db.allowed else 'deny'}:{db.rule.value}"
    return table


def row(model: str, **by_person: str) -> Table:
    return {(model, person): answer for person, answer in by_person.items()}


class TestMid2026Sequence:
    """Every step of the real sequence answers exactly as the order, exemption and lift say."""

    async def test_order_exemption_lift_restoration(self, orders: OrderHarness) -> None:
        aurora, borealis = unique("aurora"), unique("borealis")
        # Two models live: aurora public since its launch, borealis with vetted partners.
        public = await orders.start(release_spec(aurora), partner_policy())
        await orders.parked(public.release_id)
        await orders.skip(public.release_id, 15)
        await orders.until(public.release_id, lambda s: s.state is ReleaseState.LAUNCHED)
        early = await orders.start(release_spec(borealis), partner_policy())
        await orders.parked(early.release_id)
        checker = orders.registry.checker()
        models = [aurora, borealis]

        before = answers(orders, checker, models)
        assert before == {
            **row(
                aurora,
                alice="allow:public",
                bruno="allow:public",
                dana="allow:public",
                chen="allow:public",
                pat="allow:public",
                fred="allow:public",
            ),
            **row(
                borealis,
                alice="allow:grant",
                bruno="allow:grant",
                dana="allow:grant",
                chen="allow:grant",
                pat="deny:no_grant",
                fred="deny:no_grant",
            ),
        }

        # The order: a licence is needed for any access by foreign persons, within hours.
        order_id = unique("ec-2026")
        status = await orders.orders.apply(
            OrderSpec(
                order_id=order_id,
                models=models,
                scope="foreign_persons",
                required_safeguards=SAFEGUARDS,
                reason="export licence required for access by foreign persons",
                reference="BIS letter 2026-07-14",
            ),
            factories.OPERATOR,
        )
        assert status.state == "active"
        assert list(status.releases) == [early.release_id]  # the launched one has ended
        ack = status.releases[early.release_id]
        # Enforced person by person: the release records the order and is not suspended.
        assert (ack.outcome, ack.state, ack.stage) == (
            "acknowledged",
            "active",
            "vetted_partner_access",
        )
        suspended = answers(orders, checker, models)
        assert suspended == {
            **row(
                aurora,
                alice="allow:public",
                bruno="deny:order",
                dana="deny:fail_closed",
                chen="deny:order",
                pat="allow:public",
                fred="deny:order",
            ),
            **row(
                borealis,
                alice="allow:grant",
                bruno="deny:order",
                dana="deny:fail_closed",
                chen="deny:order",
                pat="deny:no_grant",
                fred="deny:order",
            ),
        }
        release = await orders.releases.status(early.release_id)
        assert release.state is ReleaseState.ACTIVE
        assert release.stage == "vetted_partner_access"
        assert [s.per_person for s in release.orders_in_force()] == [True]

        # A second letter: named trusted partners and their foreign staff, for one model.
        status = await orders.orders.exempt(
            order_id,
            OrderExemptionRequest(
                by=factories.OPERATOR,
                partners=["acme-labs"],
                models=[borealis],
                reason="trusted partner licensed for borealis",
                reference="BIS letter 2026-07-21",
            ),
        )
        assert [e.partners for e in status.exemptions] == [["acme-labs"]]
        exempted = answers(orders, checker, models)
        assert exempted == {
            **suspended,
            **row(borealis, bruno="allow:exemption", dana="allow:exemption"),
        }
        release = await orders.releases.status(early.release_id)
        assert release.state is ReleaseState.ACTIVE
        assert release.orders_in_force()[0].exempt_partners == ["acme-labs"]

        # Lifted after review, but only once the new safeguards are in place.
        with pytest.raises(DecisionRefused) as refused:
            await orders.orders.lift(
                order_id,
                OrderLiftRequest(
                    by=factories.OPERATOR,
                    safeguards=SAFEGUARDS[:1],
                    reason="controls lifted after review",
                ),
            )
        assert refused.value.rule == "safeguards_missing"
        assert answers(orders, checker, models) == exempted

        status = await orders.orders.lift(
            order_id,
            OrderLiftRequest(
                by=factories.OPERATOR,
                safeguards=SAFEGUARDS,
                reason="controls lifted after review",
                reference="BIS letter 2026-08-30",
            ),
        )
        assert status.state == "lifted"
        assert status.releases[early.release_id].update == "restore_access"
        assert status.releases[early.release_id].state == "active"
        assert answers(orders, checker, models) == before
        release = await orders.releases.status(early.release_id)
        assert release.state is ReleaseState.ACTIVE
        assert release.stage == "vetted_partner_access"
        assert release.suspensions[0].safeguards == SAFEGUARDS
        result = await orders.orders.handle(order_id).result()
        assert result.state == "lifted"

        # Restored: borealis goes on to its public launch.
        await orders.skip(early.release_id, 15)
        await orders.until(early.release_id, lambda s: s.state is ReleaseState.LAUNCHED)
        launched = answers(orders, checker, [borealis])
        assert launched == row(
            borealis,
            alice="allow:public",
            bruno="allow:public",
            dana="allow:public",
            chen="allow:public",
            pat="allow:public",
            fred="allow:public",
        )

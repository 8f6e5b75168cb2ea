"""Partners the government approves customer by customer (``government_approves_partners``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import ReleaseState, UpdateResult
from gatekeeper.models.partners import PartnerApprovalRequest, PartnerList
from tests import factories
from tests.orders.conftest import OrderHarness, partner_policy, release_spec, unique

LIAISON = factories.LIAISON


async def proposed(orders: OrderHarness) -> str:
    policy = partner_policy(timedelta(days=2), government_approves_partners=True)
    status = await orders.start(release_spec(unique("aurora")), policy)
    await orders.until(
        status.release_id,
        lambda s: s.awaiting is not None and "government's decision" in s.awaiting.what,
    )
    return status.release_id


async def decide(orders: OrderHarness, release_id: str, body: dict[str, Any]) -> UpdateResult:
    return await orders.releases.approve_partners(
        release_id, PartnerApprovalRequest.model_validate(body)
    )


async def lists(orders: OrderHarness, release_id: str) -> list[PartnerList]:
    return (await orders.releases.status(release_id)).partner_lists


def granted(orders: OrderHarness, release_id: str) -> list[str]:
    return sorted({g.partner_id for g in orders.registry.list_grants(release_id)})


class TestEntryByEntry:
    """Only partners the liaison approves are granted; the period starts when the list settles."""

    async def test_approved_partners_are_granted_as_they_are_approved(
        self, orders: OrderHarness
    ) -> None:
        release_id = await proposed(orders)
        (partner_list,) = await lists(orders, release_id)
        assert [e.candidate.partner_id for e in partner_list.entries] == [
            "acme-labs",
            "brit-ai",
            "invited-co",
        ]
        assert granted(orders, release_id) == []
        status = await orders.releases.status(release_id)
        assert status.awaiting is not None
        assert status.awaiting.roles == ["government_liaison"]
        assert status.awaiting.people == [LIAISON]

        await decide(
            orders, release_id, {"by": LIAISON, "partners": ["acme-labs"], "decision": "approve"}
        )
        await orders.until(release_id, lambda s: len(s.grants) == 1)
        assert granted(orders, release_id) == ["acme-labs"]
        await decide(
            orders,
            release_id,
            {"by": LIAISON, "partners": ["invited-co"], "decision": "deny", "reason": "not vetted"},
        )
        status = await orders.releases.status(release_id)
        assert status.awaiting is not None and "brit-ai" in status.awaiting.what

        result = await decide(
            orders,
            release_id,
            {"by": LIAISON, "partners": ["brit-ai"], "decision": "approve", "reference": "L-7"},
        )
        assert "0 partner(s) still undecided" in result.message
        status = await orders.parked(release_id)
        (partner_list,) = await lists(orders, release_id)
        assert partner_list.settled_at is not None
        assert partner_list.approved() == ["acme-labs", "brit-ai"]
        assert partner_list.denied() == ["invited-co"]
        assert granted(orders, release_id) == ["acme-labs", "brit-ai"]
        assert status.awaiting is not None and status.awaiting.until is not None
        assert status.awaiting.until - partner_list.settled_at == timedelta(days=2)
        actions = [e.action for e in await orders.releases.audit(release_id)]
        for action in ("partners_proposed", "partners_approved", "partners_denied"):
            assert action in actions
        assert actions.index("partner_list_settled") > actions.index("partners_denied")

        await orders.skip(release_id, 3)
        await orders.until(release_id, lambda s: s.state is ReleaseState.LAUNCHED)


class TestRefusals:
    """Malformed requests leave no trace; rule-breaking ones are refused and audited."""

    async def test_refusals(self, orders: OrderHarness) -> None:
        release_id = await proposed(orders)
        before = len(await orders.releases.audit(release_id))

        with pytest.raises(DecisionRefused) as unknown_person:
            await decide(
                orders, release_id, {"by": "nobody", "partners": ["brit-ai"], "decision": "approve"}
            )
        assert unknown_person.value.rule == "unknown_person"
        with pytest.raises(WorkflowUpdateFailedError):
            await orders.handle(release_id).execute_update(
                "approve_partners", {"by": LIAISON, "partners": [], "decision": "approve"}
            )
        assert len(await orders.releases.audit(release_id)) == before

        with pytest.raises(DecisionRefused) as not_liaison:
            await decide(
                orders,
                release_id,
                {"by": factories.OPERATOR, "partners": ["brit-ai"], "decision": "approve"},
            )
        assert not_liaison.value.rule == "role_not_held"
        with pytest.raises(DecisionRefused) as not_proposed:
            await decide(
                orders, release_id, {"by": LIAISON, "partners": ["far-away"], "decision": "approve"}
            )
        assert not_proposed.value.rule == "partner_not_proposed"
        await decide(
            orders, release_id, {"by": LIAISON, "partners": ["brit-ai"], "decision": "deny"}
        )
        with pytest.raises(DecisionRefused) as changed:
            await decide(
                orders, release_id, {"by": LIAISON, "partners": ["brit-ai"], "decision": "approve"}
            )
        assert changed.value.rule == "already_decided"

        audit = await orders.releases.audit(release_id)
        refused = [e.details["rule"] for e in audit if e.action == "request_refused"]
        # A repeat (deciding a decided entry again) is refused by the validator, unrecorded.
        assert refused == ["role_not_held", "partner_not_proposed"]
        assert granted(orders, release_id) == []


class TestThroughTheCli:
    """The liaison records the government's decisions with `gatekeeper gov approve-partners`."""

    async def test_approve_and_deny(self, orders: OrderHarness, tmp_path: Path) -> None:
        from tests.refusals.conftest import Run

        run = Run(orders, tmp_path)
        rid = await proposed(orders)
        candidates = [e.candidate.partner_id for e in (await lists(orders, rid))[0].entries]
        first, *rest = candidates
        outcome = await run("gov", "approve-partners", rid, "--as", factories.LIAISON, "-p", first)
        assert outcome.code == 0, outcome.stderr
        args = [a for p in rest for a in ("-p", p)]
        outcome = await run(
            "gov", "approve-partners", rid, "--as", factories.LIAISON, *args, "--deny"
        )
        assert outcome.code == 0, outcome.stderr
        entries = {
            e.candidate.partner_id: e.decision for e in (await lists(orders, rid))[0].entries
        }
        assert entries == {first: "approve", **dict.fromkeys(rest, "deny")}
        again = await run("gov", "approve-partners", rid, "--as", "sam.safety", "-p", first)
        assert again.code == 7 and "government_liaison" in again.error_line

"""An access order's decisions without a server: who may act, which exemption or lift is
admissible, and what each reached release is sent (``gatekeeper.order_decisions``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gatekeeper import order_decisions as decide
from gatekeeper.failures import Refused
from gatekeeper.models.base import MAX_TEXT
from gatekeeper.models.orders import (
    AccessOrderInput,
    AffectedRelease,
    OrderExemptionRequest,
    OrderLiftRequest,
    OrderStatus,
    ReleaseAck,
)

NOW = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


def status(**overrides: object) -> OrderStatus:
    order = AccessOrderInput(
        order_id="o-1",
        models=["aurora", "borealis"],
        scope="foreign_persons",
        required_safeguards=["classifier-v2"],
        reason="export rule",
        reference="docket 7",
        issued_by="olga.officer",
    )
    data: dict[str, object] = {
        "order": order,
        "issued_at": NOW,
        "state": "active",
        "officers": ["olga.officer"],
        "releases": {
            "r-1": ReleaseAck(
                release_id="r-1", model="aurora", update="suspend_access", outcome="acknowledged"
            ),
            "r-2": ReleaseAck(
                release_id="r-2", model="borealis", update="suspend_access", outcome="unanswered"
            ),
            "r-3": ReleaseAck(
                release_id="r-3", model="aurora", update="suspend_access", outcome="ended"
            ),
        },
    }
    data.update(overrides)
    return OrderStatus.model_validate(data)


def refusal(call: object, *args: object) -> Refused:
    with pytest.raises(Refused) as raised:
        call(*args)  # type: ignore[operator]
    return raised.value


class TestWhoAndWhen:
    """Only officers act; a lifted order takes nothing more; a lift names every safeguard."""

    def test_officers_only(self) -> None:
        exemption = OrderExemptionRequest(by="mallory", partners=["acme-labs"], reason="x")
        refused = refusal(decide.check_exempt, status(), exemption)
        assert refused.type == "not_authorised" and "olga.officer" in refused.message

    def test_lift_needs_every_safeguard(self) -> None:
        lift = OrderLiftRequest(by="olga.officer", reason="done")
        refused = refusal(decide.check_lift, status(), lift)
        assert refused.type == "safeguards_missing" and "classifier-v2" in refused.message
        decide.check_lift(status(), lift.model_copy(update={"safeguards": ["classifier-v2"]}))

    def test_lifted_order_takes_no_exemption(self) -> None:
        exemption = OrderExemptionRequest(by="olga.officer", partners=["acme-labs"], reason="x")
        refused = refusal(decide.check_exempt, status(state="lifted"), exemption)
        assert refused.type == "order_lifted"

    def test_unknown_model(self) -> None:
        exemption = OrderExemptionRequest(
            by="olga.officer", partners=["acme-labs"], models=["zephyr"], reason="x"
        )
        assert refusal(decide.check_exempt, status(), exemption).type == "unknown_model"


class TestWhatReleasesAreSent:
    """Suspensions carry the exempt list for their model; restores go to every reached release;
    a sweep reaches only releases not reached yet."""

    def test_after_exemption_and_lift(self) -> None:
        s = status()
        again = decide.after_exemption(s, ["aurora"])
        assert [u.release_id for u in again] == ["r-1"], "reached, suspended, of that model"
        lift = OrderLiftRequest(by="olga.officer", safeguards=["classifier-v2"], reason="done")
        restore = decide.restoration(s, lift)
        assert restore.reason == "order lifted by olga.officer: done"
        assert [u.release_id for u in decide.after_lift(s, restore)] == ["r-1", "r-2"]
        [resent] = [decide.resend(s, a, restore) for a in decide.unanswered(s)]
        assert resent.release_id == "r-2" and resent.suspend is not None, "it owes a suspension"

    def test_sweep_and_reason(self) -> None:
        s = status()
        found = [
            AffectedRelease(release_id="r-1", model="aurora"),
            AffectedRelease(release_id="r-9", model="borealis"),
        ]
        [fresh] = decide.newly_found(s, found)
        assert fresh.release_id == "r-9" and fresh.suspend is not None
        assert fresh.suspend.reason == "export rule (docket 7)"
        assert decide.reason("x" * (MAX_TEXT + 10), "") == "x" * MAX_TEXT, "bounded"
        assert "**Access order o-1** — active" in decide.details(s)
        assert "scope: foreign_persons (enforced per person by access checks;" in decide.details(s)

    def test_an_exemptions_sweep_looks_only_for_the_models_it_names(self) -> None:
        s = status()
        assert decide.sweep_models(s, None) == ["aurora", "borealis"]
        assert decide.sweep_models(s, ["*"]) == ["aurora", "borealis"], "every model of the order"
        assert decide.sweep_models(s, ["aurora"]) == ["aurora"]
        everything = status(order=s.order.model_copy(update={"models": ["*"]}))
        assert decide.sweep_models(everything, ["zephyr"]) == ["zephyr"]
        found = [
            AffectedRelease(release_id="r-8", model="aurora"),
            AffectedRelease(release_id="r-9", model="borealis"),
        ]
        [fresh] = decide.newly_found(s, found, ["aurora"])
        assert fresh.release_id == "r-8", "a release of another model is left alone"

    def test_the_lifts_sweep_restores_only_releases_never_reached(self) -> None:
        s = status()
        lift = OrderLiftRequest(by="olga.officer", safeguards=["classifier-v2"], reason="done")
        restore = decide.restoration(s, lift)
        found = [
            AffectedRelease(release_id="r-1", model="aurora"),  # reached: restored already
            AffectedRelease(release_id="r-3", model="aurora"),  # reached, ended since
            AffectedRelease(release_id="r-8", model="borealis"),  # started after the sweeps
            AffectedRelease(release_id="r-9", model="zephyr"),  # not the order's model
        ]
        [late] = decide.lift_sweep(s, found, restore)
        assert (late.release_id, late.restore) == ("r-8", restore)

"""Order files, the visibility query, the registry's exemptions and public launches, and the
fan-out activity's answer to a release that never answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from gatekeeper.adapters.registry import AccessRegistry, PublicLaunch, RegisteredPerson
from gatekeeper.models import AccessSuspensionRequest, NationalityStatus, ReleaseInput, Surface
from gatekeeper.models.orders import (
    ApplyOrderRequest,
    ExemptOrderRequest,
    ReleaseUpdate,
    ReleaseUpdateBatch,
)
from gatekeeper.orders import (
    OrderFileError,
    affected_query,
    load_exemption,
    load_lift,
    load_order_spec,
)
from tests import factories
from tests.registry.builders import populate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "orders"
NOW = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


class TestOrderFiles:
    """The shipped examples load; a broken file names the field and the line."""

    def test_the_examples_load(self) -> None:
        order = load_order_spec(EXAMPLES / "export-control-order.yaml")
        assert (order.order_id, order.models, order.scope) == (
            "ec-2026-07",
            ["aurora", "borealis"],
            "foreign_persons",
        )
        exemption = load_exemption(EXAMPLES / "exemption.yaml")
        assert (exemption.partners, exemption.models) == (["acme-labs"], ["borealis"])
        lift = load_lift(EXAMPLES / "lift.yaml")
        assert set(order.required_safeguards) <= set(lift.safeguards)

    def test_a_bad_scope_is_located(self, tmp_path: Path) -> None:
        path = tmp_path / "order.yaml"
        path.write_text("order_id: ec-1\nmodels: [aurora]\nscope: 'foreign persons'\nreason: x\n")
        with pytest.raises(OrderFileError) as err:
            load_order_spec(path)
        assert f"{path}:3" in str(err.value)
        assert "scope" in str(err.value)

    def test_a_bare_jurisdiction_is_a_jurisdiction_scope(self, tmp_path: Path) -> None:
        path = tmp_path / "order.yaml"
        path.write_text("order_id: ec-1\nmodels: ['*', aurora]\nscope: CN\nreason: x\n")
        order = load_order_spec(path)
        assert (order.scope, order.models) == ("jurisdiction:cn", ["*"])


class TestAffectedQuery:
    """Running releases of the named models, or of every model."""

    def test_named_models(self) -> None:
        assert affected_query(["aurora", "borealis"]) == (
            "WorkflowType = 'ModelReleaseWorkflow' AND ExecutionStatus = 'Running' "
            "AND ModelName IN ('aurora', 'borealis')"
        )

    def test_every_model(self) -> None:
        assert "ModelName" not in affected_query(["*"])


@pytest.fixture
def registry(database_url: str) -> Iterator[AccessRegistry]:
    """The standard partners and people, on each backend (SQLite file, PostgreSQL database)."""
    with AccessRegistry(database_url) as found:
        populate(found)
        yield found


class TestRegistry:
    """Exemptions per model and public launches, as the access check sees them."""

    def test_an_exemption_for_one_model_restores_only_that_models_grants(
        self, registry: AccessRegistry
    ) -> None:
        partner = registry.list_partners()[0].id
        registry.apply_order(
            ApplyOrderRequest(
                order_id="ec-1",
                models=["aurora", "borealis"],
                scope="everyone",
                reason="licence needed",
                issued_by="olga.ops",
                issued_at=NOW,
            )
        )
        result = registry.exempt_order(
            ExemptOrderRequest(
                idempotency_key="ec-1:exempt:1",
                order_id="ec-1",
                partners=[partner],
                models=["borealis"],
                by="olga.ops",
                at=NOW,
            )
        )
        again = registry.exempt_order(
            ExemptOrderRequest(
                idempotency_key="ec-1:exempt:1",
                order_id="ec-1",
                partners=[partner],
                models=["borealis"],
                by="olga.ops",
                at=NOW,
            )
        )
        assert again == result
        assert result.order.exempt_for("borealis") == [partner]
        assert result.order.exempt_for("aurora") == []
        assert registry.get_order("ec-1").exemptions == result.order.exemptions

    def test_a_public_launch_allows_known_people_until_an_order_denies_them(
        self, database_url: str
    ) -> None:
        registry = AccessRegistry(database_url)
        registry.add_person(
            RegisteredPerson(id="pat", nationality=NationalityStatus.US_PERSON, location="us")
        )
        registry.add_person(RegisteredPerson(id="uma"))
        assert registry.check_access("aurora", "pat").rule.value == "no_grant"
        launch = PublicLaunch(
            release_id="aurora-2",
            model_name="aurora",
            model_version="2.0.0",
            surface=Surface.API,
            launch_id="LAUNCH-1",
            published_at=NOW,
        )
        assert registry.record_public_launch(launch) == launch
        assert registry.record_public_launch(launch.model_copy(update={"launch_id": "x"})) == launch
        assert registry.check_access("aurora", "pat").rule.value == "public"
        assert not registry.check_access("aurora", "pat", Surface.APP).allowed
        assert not registry.check_access("aurora", "pat", variant="1.0.0").allowed
        registry.apply_order(
            ApplyOrderRequest(
                order_id="ec-1",
                models=["aurora"],
                scope="foreign_persons",
                reason="licence needed",
                issued_by="olga.ops",
                issued_at=NOW,
            )
        )
        checker = registry.checker()
        assert checker.check("aurora", "pat").rule.value == "public"
        assert checker.check("aurora", "uma").rule.value == "fail_closed"
        assert registry.list_public_launches("aurora") == [launch]
        registry.close()


class TestUnansweredRelease:
    """A release whose worker never answers does not hold up the batch: it is unanswered."""

    async def test_unanswered(self, client: Client) -> None:
        release_id = f"orphan-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow(
            "ModelReleaseWorkflow",
            ReleaseInput(spec=factories.spec(release_id)),
            id=f"release-{release_id}",
            task_queue=f"nobody-{uuid.uuid4().hex[:8]}",  # no worker ever polls it
        )
        update = ReleaseUpdate(
            release_id=release_id,
            model="aurora",
            suspend=AccessSuspensionRequest(
                order_id="ec-1", by="access-order-ec-1", scope="everyone", reason="licence"
            ),
        )
        try:
            result = await ActivityEnvironment().run(
                OrderActivities(client).send_release_updates,
                ReleaseUpdateBatch(order_id="ec-1", updates=[update], answer_within=0.5),
            )
        finally:
            await handle.terminate("test over")
        (ack,) = result.acks
        assert (ack.release_id, ack.outcome) == (release_id, "unanswered")

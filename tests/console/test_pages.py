"""The Inbox, Releases and Orders pages, over HTTP, against releases and orders a real worker
runs: what they show, the filters' one-line refusals, and text shown exactly as written."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta

from gatekeeper.ids import order_workflow_id
from gatekeeper.models import ApprovalGateStage, ModelRef, OperatorRequest
from gatekeeper.models.orders import OrderSpec
from gatekeeper.orders import ORDER_WORKFLOW_TYPE
from tests import factories
from tests.cli.conftest import until_visible
from tests.console.conftest import Console, ConsoleHarness
from tests.helpers import eventually

SCRIPT = "<script>alert(1)</script>"


def new_id() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


def row_of(page: str, release_id: str) -> str:
    """The Inbox row of ``release_id``."""
    row = page[page.index(f'data-release="{release_id}"') :]
    return row[: row.index("</tr>")]


def rows(page: str, testid: str) -> list[str]:
    """The ``data-release`` (or ``data-order``) of each element with ``data-testid``."""
    return re.findall(rf'data-testid="{testid}" data-(?:release|order)="([^"]+)"', page)


async def waiting_at_review(harness: ConsoleHarness, **spec: object) -> str:
    rid = new_id()
    await harness.start(factories.spec(rid, **spec))
    await harness.at_stage(rid, "internal_review")
    await until_visible(
        harness.env.client, f"WorkflowId = 'release-{rid}' AND AwaitingRoles = 'safety'", [rid]
    )
    return rid


class TestInbox:
    """The Inbox lists what waits for the signed-in person, as ``review inbox`` finds it."""

    async def test_a_reviewer_sees_the_gate_and_the_submitter_does_not(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        rid = await waiting_at_review(harness)
        await console.dev_signin("sam.safety")
        page = await console.get("/inbox")
        assert page.status_code == 200
        assert rows(page.text, "inbox-row") == [rid]
        row = page.text[page.text.index(f'data-release="{rid}"') :]
        row = row[: row.index("</tr>")]
        assert "internal_review" in row and "safety" in row
        status = await harness.releases.status(rid)
        assert status.awaiting is not None
        since = status.awaiting.since.isoformat().replace("+00:00", "Z")
        assert f'datetime="{since}"' in row, "waiting since: when the gate began to wait"

        await console.dev_signin(factories.SUBMITTER)
        mine = await console.get("/inbox")
        assert rows(mine.text, "inbox-row") == [], "nobody reviews their own release"
        assert 'data-testid="inbox-empty"' in mine.text

    async def test_after_the_decision_the_release_leaves_the_inbox(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        rid = await waiting_at_review(harness)
        await harness.approve(rid, "sam.safety", "safety")
        await console.dev_signin("sam.safety")
        assert rid not in rows((await console.get("/inbox")).text, "inbox-row")
        await console.dev_signin("lee.legal")
        assert rows((await console.get("/inbox")).text, "inbox-row") == [rid]

    async def test_the_deadline_counts_down_and_an_escalation_shows(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        stages = list(factories.policy().stages)
        stages[0] = ApprovalGateStage(
            id="internal_review",
            quorum=factories.REVIEW_QUORUM,
            escalate_after=timedelta(days=5),
            deadline=timedelta(days=20),
        )
        started = await harness.start(policy=factories.policy(stages=stages))
        rid = started.release_id
        await harness.at_stage(rid, "internal_review")
        await console.dev_signin("sam.safety")
        before = await console.get("/inbox")
        row = row_of(before.text, rid)
        assert 'data-testid="deadline"' in row and ">in 19 d " in row
        assert 'data-testid="escalated"' not in row

        await harness.skip(rid, 5.5)
        status = await harness.until(
            rid, lambda s: s.gates["internal_review"].escalated_at is not None
        )
        assert status.awaiting is not None and status.awaiting.until is not None
        row = row_of((await console.get("/inbox")).text, rid)
        assert 'data-testid="escalated"' in row
        until = status.awaiting.until.isoformat().replace("+00:00", "Z")
        assert f'datetime="{until}"' in row


class TestReleases:
    """Filters are checked as ``release list`` checks them; outcomes are visible."""

    async def test_bad_filters_are_refused_in_one_line_and_list_nothing(
        self, console: Console
    ) -> None:
        await console.dev_signin("sam.safety")
        for query, line in (
            (
                {"state": "Held"},
                "error: state: 'Held' is not a release state (did you mean 'held'?); one of "
                "active, held, suspended, launched, rejected, withdrawn",
            ),
            (
                {"risk": "huge"},
                "error: risk: 'huge' is not a risk tier; one of low, medium, high, critical",
            ),
            ({"stage": "internal_reveiw"}, "error: stage: 'internal_reveiw' is not a stage of"),
            ({"awaiting_role": "safty"}, "error: awaiting_role: 'safty' is not a role of"),
            ({"model": "a'b"}, 'error: filter value "a\'b" may not contain quotes'),
        ):
            page = await console.get("/releases", params=query)
            assert page.status_code == 400, query
            flash = re.search(r'data-testid="flash"[^>]*>([^<]*)<', page.text)
            assert flash is not None, page.text
            shown = html.unescape(flash.group(1))
            assert shown.startswith(line), (query, shown)
            assert "\n" not in shown
            assert 'data-testid="release-row"' not in page.text

    async def test_filters_select_and_outcomes_show(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        model = f"m{uuid.uuid4().hex[:8]}"
        waiting = await waiting_at_review(harness, model=ModelRef(name=model, version="1.0"))
        withdrawn = await waiting_at_review(harness, model=ModelRef(name=model, version="2.0"))
        await harness.releases.operate(
            withdrawn, "withdraw", OperatorRequest(by=factories.OPERATOR, reason="retired")
        )
        await until_visible(
            harness.env.client, f"ModelName = '{model}' AND ReleaseState = 'withdrawn'", [withdrawn]
        )
        await console.dev_signin("sam.safety")

        both = await console.get("/releases", params={"model": model})
        assert sorted(rows(both.text, "release-row")) == sorted([waiting, withdrawn])
        assert 'data-testid="outcome">withdrawn<' in both.text

        only = await console.get("/releases", params={"model": model, "state": "withdrawn"})
        assert rows(only.text, "release-row") == [withdrawn]
        active = await console.get(
            "/releases",
            params={"model": model, "stage": "internal_review", "awaiting_role": "safety"},
        )
        assert rows(active.text, "release-row") == [waiting]
        empty = await console.get("/releases", params={"model": model, "risk": "critical"})
        assert empty.status_code == 200 and rows(empty.text, "release-row") == []


class TestTextIsInert:
    """What a spec or an order says is shown as written: escaped, never markup or script."""

    async def test_a_script_in_a_model_version_is_text_on_every_page(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        model = f"m{uuid.uuid4().hex[:8]}"
        await waiting_at_review(harness, model=ModelRef(name=model, version=SCRIPT))
        await console.dev_signin("sam.safety")
        for path, params in (("/inbox", {}), ("/releases", {"model": model})):
            page = await console.get(path, params=params)
            assert SCRIPT not in page.text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path

    async def test_an_orders_reason_is_text(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        order_id = f"o-{uuid.uuid4().hex[:8]}"
        reason = f"{SCRIPT} [bold red]urgent[/] **now** <b>x</b>"
        spec = OrderSpec.model_validate(
            {
                "order_id": order_id,
                "models": [f"nomodel{uuid.uuid4().hex[:6]}"],
                "scope": "everyone",
                "reason": reason,
                "required_safeguards": ["classifier v2"],
            }
        )
        await harness.orders.apply(spec, factories.OPERATOR)
        await console.dev_signin(factories.OPERATOR)
        page = await console.get("/orders")
        assert page.status_code == 200
        assert order_id in rows(page.text, "order-row")
        section = page.text[page.text.index(f'data-order="{order_id}"') :]
        section = section[: section.index("</section>")]
        assert "<script>" not in section and "<b>x</b>" not in section
        assert html.escape(reason, quote=False) in section, "shown exactly as written"
        assert "classifier v2" in section and "active" in section


class TestOrdersOfThisInstallation:
    """The Orders page lists the orders of this installation's task queue only: an order another
    worker set (its own queue, no worker of ours to answer a query) is neither listed nor
    waited on."""

    async def test_an_order_on_another_queue_is_not_listed(
        self, console: Console, harness: ConsoleHarness
    ) -> None:
        ours, theirs = (f"o-{uuid.uuid4().hex[:8]}" for _ in range(2))

        def spec(order_id: str) -> OrderSpec:
            return OrderSpec.model_validate(
                {
                    "order_id": order_id,
                    "models": [f"nomodel{uuid.uuid4().hex[:6]}"],
                    "scope": "everyone",
                    "reason": "export control",
                }
            )

        # Started on a queue no worker polls: nothing answers for it.
        await harness.env.client.start_workflow(
            ORDER_WORKFLOW_TYPE,
            spec(theirs).model_dump(mode="json"),
            id=order_workflow_id(theirs),
            task_queue=f"nobody-{uuid.uuid4().hex[:6]}",
        )
        await harness.orders.apply(spec(ours), factories.OPERATOR)
        client = harness.env.client

        async def listed() -> set[str]:
            query = f"WorkflowId = 'access-order-{theirs}' OR WorkflowId = 'access-order-{ours}'"
            return {w.id async for w in client.list_workflows(query)}

        await eventually(listed, lambda ids: len(ids) == 2, what="both orders listed")
        await console.dev_signin(factories.OPERATOR)
        page = await console.get("/orders")
        assert page.status_code == 200
        shown = rows(page.text, "order-row")
        assert ours in shown and theirs not in shown
        assert "error:" not in page.text

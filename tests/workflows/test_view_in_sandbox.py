"""The status view, the UI's Markdown and the access order's decisions run in the workflow
sandbox as they are: a workflow importing them *without* pass-through (so the sandbox re-imports
and checks them) renders the same details inside it as the test does outside."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from gatekeeper import order_decisions
from gatekeeper.failures import CONVERTER
from gatekeeper.status_details import current_details
from tests.orders.test_decisions import status as order_status
from tests.test_status_view import status as release_status
from tests.workflows.sandboxed_render import RenderInSandbox


class TestViewInTheSandbox:
    """Nothing in the view or its renderers does I/O or calls what the sandbox forbids."""

    async def test_render_inside_the_sandbox(self, client: Client, task_queue: str) -> None:
        converted = Client(**{**client.config(), "data_converter": CONVERTER})
        release, order = release_status(), order_status()
        async with Worker(
            converted,
            task_queue=task_queue,
            workflows=[RenderInSandbox],
            # cryptography's Rust core cannot be imported twice (the models' signature types
            # import it); every gatekeeper module is re-imported and checked by the sandbox.
            workflow_runner=SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography")
            ),
        ):
            shown = await converted.execute_workflow(
                RenderInSandbox.run,
                args=[release, order],
                id=f"render-{task_queue}",
                task_queue=task_queue,
            )
        assert shown == [current_details(release), "1", order_decisions.details(order)]

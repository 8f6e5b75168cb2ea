"""The sandbox checks the decision logic: under the SDK's default runner (every replay) the
release workflow's ledger, deciders, rules and spec checks are imported afresh in each run's
sandbox, and only the modules with a reason to be shared with the worker process are (the
reasons are in ``workflows/release.py``'s ``imports_passed_through`` block). The worker's own
runner shares the whole core and the workflows, for memory and CPU
(``workers.worker.SANDBOX_PASSTHROUGH``)."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

import gatekeeper.models.audit
import workflows.release  # noqa: F401  (the host's copies the probe compares with)
from gatekeeper.audit import AuditChain
from gatekeeper.identity.heads import AnchorRequest
from tests.helpers import running_worker
from tests.workflows.sandbox_probe import SandboxProbe
from workers.worker import workflow_runner

#: Shared with the worker process, each for its reason.
SHARED = [
    "cryptography.exceptions",  # pyo3: loads once per process
    "gatekeeper.signing",  # holds the rest of cryptography
    "gatekeeper.webauthn",  # holds cryptography's ECDSA (passkeys)
    "gatekeeper.identity.authority",  # the worker's one key directory
    "gatekeeper.identity.keys",
    "gatekeeper.identity.heads",  # signed heads carry audit events ...
    "gatekeeper.models.audit",  # ... so the models are the process's
    "gatekeeper.models.spec",
    "gatekeeper.models.status",
    "gatekeeper.models.policy",
    "gatekeeper.errors",  # what shared modules raise is what the workflow catches
    "yaml",  # a parser, no decision logic: not imported again for each run
    "gatekeeper.yamlfile",
]
#: The decision logic: imported, and checked, by the sandbox.
SANDBOXED = [
    "gatekeeper",  # the package: what the sandbox imports is set on its own, not the process's
    "gatekeeper.ledger.state",
    "gatekeeper.ledger.deciders",
    "gatekeeper.ledger.review",
    "gatekeeper.ledger.amend",
    "gatekeeper.ledger.government",
    "gatekeeper.ledger.operations",
    "gatekeeper.ledger.checks",
    "gatekeeper.stages",
    "gatekeeper.stages.approval_gate",
    "gatekeeper.stages.waiting_period",
    "gatekeeper.rules",
    "gatekeeper.rules.quorum",
    "gatekeeper.rules.registry",
    "gatekeeper.spec",
    "gatekeeper.ids",
    "gatekeeper.text",
    "gatekeeper.routing",
    "gatekeeper.signed_requests",
    "gatekeeper.audit",
    "gatekeeper.status_details",
    "gatekeeper.status_view",
    "workflows.effects",  # the release workflow's own parts
    "workflows.requests",
    "workflows.updates",
    "workflows.waiting",
]


class TestWhatTheSandboxShares:
    """Under the SDK's default runner (replayers) the release workflow's sandbox holds its own copy
    of the decision logic and the process's copy of the shared modules; the worker's runner
    shares the core and the workflows as well (memory, CPU), never leaving a sandbox's copy on
    the process's packages."""

    @pytest.mark.parametrize("runner", ["default", "worker"])
    async def test_decision_logic_is_sandboxed_and_the_rest_shared(
        self, env: WorkflowEnvironment, runner: str
    ) -> None:
        task_queue = f"sandbox-{uuid.uuid4().hex[:8]}"
        async with running_worker(
            env.client,
            task_queue,
            workflows=[SandboxProbe],
            activities=[],
            workflow_runner=workflow_runner() if runner == "worker" else SandboxedWorkflowRunner(),
        ):
            held = await env.client.execute_workflow(
                SandboxProbe.run,
                SHARED + SANDBOXED,
                id=f"sandbox-probe-{uuid.uuid4().hex[:8]}",
                task_queue=task_queue,
            )
        missing = set(SHARED + SANDBOXED) - set(held)
        if runner == "default":
            assert not missing, "every module is imported by the workflow"
        else:
            # The worker shares the workflows, so what only they import (a parser) is not
            # imported in the sandbox at all; every sandboxed module still is.
            assert missing <= set(SHARED), missing
        for name in SHARED:
            if name in held:
                assert held[name] == id(sys.modules[name]), f"{name} is not the process's"
        for name in SANDBOXED:
            if runner == "worker" and name.startswith(("gatekeeper", "workflows")):
                # The worker shares the core and the workflows for memory and CPU
                # (SANDBOX_PASSTHROUGH); replays, which use the default runner, still check them.
                assert held[name] == id(sys.modules[name]), f"{name} is not the process's"
            else:
                assert held[name] != id(sys.modules[name]), f"{name} is passed through"
        # The sandbox's imports leave the process's packages as they were.
        for name in SANDBOXED + SHARED:
            parent, _, child = name.rpartition(".")
            if parent:
                assert getattr(sys.modules[parent], child) is sys.modules[name], name


class TestWhyTheModelsAreShared:
    """A sandboxed copy of the models would be look-alike classes: the signed heads' request (a
    shared module) refuses the audit events a sandboxed ledger would make with them."""

    def test_a_look_alike_audit_event_is_refused(self) -> None:
        found = importlib.util.find_spec("gatekeeper.models.audit")
        assert found is not None and found.origin is not None
        spec = importlib.util.spec_from_file_location("look_alike_audit", found.origin)
        assert spec is not None and spec.loader is not None
        copy = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = copy  # what a sandbox does: the copy is a module of its own
        try:
            spec.loader.exec_module(copy)
        finally:
            del sys.modules[spec.name]
        event = AuditChain("r-1").append(at=datetime.now(UTC), actor="gatekeeper", action="x")
        look_alike = copy.AuditEvent.model_validate(event.model_dump())
        assert type(look_alike) is not gatekeeper.models.audit.AuditEvent

        fields = {"release_id": "r-1", "first_run_id": "run", "seq": 0, "hash": event.hash}
        AnchorRequest(events=[event], reason="shared class", **fields)
        with pytest.raises(ValidationError):
            AnchorRequest(events=[look_alike], reason="look-alike class", **fields)

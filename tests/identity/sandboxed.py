"""A sandboxed workflow that reaches the worker's key directory the way update validators do.

Imported by the workflow sandbox: only Temporal and the passed-through identity modules here.
``gatekeeper.identity.authority`` is deliberately imported *outside* any
``imports_passed_through`` block: it is the worker's runner (``workers.worker.workflow_runner``)
that must share the process's one instance with the sandbox.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from gatekeeper.identity import authority


def _lookup(key_id: str) -> dict[str, Any] | None:
    with workflow.unsafe.sandbox_unrestricted():
        directory = authority.directory_for(workflow.info().task_queue)
        record = directory.key(key_id) if directory is not None else None
        return record.model_dump(mode="json") if record is not None else None


@workflow.defn(name="KeyLookupProbe")
class KeyLookupProbe:
    """Answers ``key`` queries from the key directory; ``use_key`` accepts registered keys only."""

    def __init__(self) -> None:
        self._used: list[str] = []
        self._done = False

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self._done)
        return self._used

    @workflow.query
    def key(self, key_id: str) -> dict[str, Any] | None:
        return _lookup(key_id)

    @workflow.update
    def use_key(self, key_id: str) -> str:
        self._used.append(key_id)
        return key_id

    @use_key.validator
    def _check_key(self, key_id: str) -> None:
        if _lookup(key_id) is None:
            raise ValueError(f"key {key_id} is not registered on this worker")

    @workflow.signal
    def done(self) -> None:
        self._done = True

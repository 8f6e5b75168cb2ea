"""Shared pieces of the process tests: free ports and a trivial workflow."""

from __future__ import annotations

import socket
from contextlib import ExitStack

from temporalio import workflow


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@workflow.defn(sandboxed=False)
class WaitForFinishWorkflow:
    """Waits for a ``finish`` signal and returns what it carried; stands in for a release."""

    def __init__(self) -> None:
        self._result: str | None = None

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self._result is not None)
        return f"{name}: {self._result}"

    @workflow.signal
    def finish(self, result: str) -> None:
        workflow.logger.info("finishing", extra={"result": result})
        self._result = result

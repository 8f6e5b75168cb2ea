"""Shared pieces of the process tests: free ports and a trivial workflow."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

from temporalio import workflow

from tests.helpers import eventually


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    """Kept for tests written before :mod:`tests.helpers`: :func:`tests.helpers.eventually`."""
    await eventually(check, what=getattr(check, "__name__", "the check"), within=10)


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

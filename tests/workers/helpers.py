"""Shared pieces of the process tests: free ports and a trivial workflow."""

from __future__ import annotations

import random
import socket
from collections.abc import Awaitable, Callable
from contextlib import ExitStack

from temporalio import workflow

from tests.helpers import eventually

#: Ports handed out lie below Linux's ephemeral range (32768-60999 by default), from which every
#: outgoing connection takes its local port: a port picked there (by binding port 0) can be taken
#: by any test's client socket before the server meant to listen on it binds it, and the server
#: then fails with "address already in use" (seen once with the Temporal UI test in make test).
PORT_RANGE = range(20000, 32000)
#: The defaults of `gatekeeper dev` (gRPC, UI, console), which a developer may be running.
RESERVED_PORTS = frozenset({7233, 8233, 8400})


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago, chosen at random
    outside the ephemeral range (see :data:`PORT_RANGE`)."""
    chooser = random.SystemRandom()
    with ExitStack() as stack:
        ports: list[int] = []
        while len(ports) < count:
            port = chooser.choice(PORT_RANGE)
            if port in ports or port in RESERVED_PORTS:
                continue
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
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

"""A sandboxed workflow that imports :mod:`workflows.release` the way a release's sandbox does,
and tells which modules the sandbox shares with the worker process (``SandboxProbe.run``)."""

from __future__ import annotations

import sys

from temporalio import workflow

import workflows.release  # noqa: F401  (its imports are what the probe looks at)


@workflow.defn(name="SandboxProbe")
class SandboxProbe:
    """Answers, for each module name, the id of the module object its sandbox holds."""

    @workflow.run
    async def run(self, names: list[str]) -> dict[str, int]:
        return {name: id(sys.modules[name]) for name in names if name in sys.modules}

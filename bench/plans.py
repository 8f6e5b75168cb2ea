"""The baseline plans a bench worker runs, by workflow type.

Shared by the worker process and its workflow sandbox (the baseline worker passes this module
through, :func:`workers.worker.workflow_runner`): the plan is not the baseline workflow's input,
because its input is the release's own, byte for byte (:mod:`bench.baseline`).
"""

from __future__ import annotations

from typing import Any

#: Workflow type → :class:`bench.baseline.BaselinePlan`.
PLANS: dict[str, Any] = {}

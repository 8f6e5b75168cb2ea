"""The workflows a Gatekeeper worker registers.

Kept out of ``workflows/__init__.py`` on purpose: the sandbox imports a workflow's package afresh
for every workflow it runs, so an ``__init__`` that imported both workflows would load the access
order workflow into every release's sandbox (and the other way round).
"""

from workflows.access_order import AccessOrderWorkflow
from workflows.release import ModelReleaseWorkflow

ALL_WORKFLOWS: list[type] = [ModelReleaseWorkflow, AccessOrderWorkflow]

__all__ = ["ALL_WORKFLOWS", "AccessOrderWorkflow", "ModelReleaseWorkflow"]

"""Deterministic workflow code. Workers register :data:`ALL_WORKFLOWS`."""

from workflows.access_order import AccessOrderWorkflow, access_order_workflow_id
from workflows.release import ModelReleaseWorkflow, release_workflow_id

ALL_WORKFLOWS: list[type] = [ModelReleaseWorkflow, AccessOrderWorkflow]

__all__ = [
    "ALL_WORKFLOWS",
    "AccessOrderWorkflow",
    "ModelReleaseWorkflow",
    "access_order_workflow_id",
    "release_workflow_id",
]

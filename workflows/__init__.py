"""Deterministic workflow code. Workers register :data:`ALL_WORKFLOWS`."""

from workflows.release import ModelReleaseWorkflow, release_workflow_id

ALL_WORKFLOWS: list[type] = [ModelReleaseWorkflow]

__all__ = ["ALL_WORKFLOWS", "ModelReleaseWorkflow", "release_workflow_id"]

"""Deterministic workflow code. Workers register :data:`workflows.registry.ALL_WORKFLOWS`.

Nothing is imported here: see :mod:`workflows.registry` for why.
"""

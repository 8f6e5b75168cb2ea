"""Attacks on the gate, each driven through a public interface against a real dev server.

One module per boundary (policy authority, channels and secrets, evidence roots, bounded
requests, refusals, escaping, codec). ``docs/security.md`` lists each protection with its test.
"""

from tests.workflows.conftest import Harness, harness

__all__ = ["Harness", "harness"]

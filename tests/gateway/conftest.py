"""The order harness (a real worker on the session's dev server) and the in-process CLI for the
gateway tests."""

from tests.orders.conftest import cli, orders

__all__ = ["cli", "orders"]

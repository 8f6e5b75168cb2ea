"""The order harness (a real worker on the session's dev server) for the gateway tests."""

from tests.orders.conftest import orders

__all__ = ["orders"]

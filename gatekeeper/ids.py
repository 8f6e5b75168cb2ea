"""Workflow ids: the one place their formats are written, and the way back to the business id.

A release runs as workflow ``release-<release_id>``, an access order as
``access-order-<order_id>``; the updates an order relays to releases are from the actor
``access-order-<order_id>`` (the order's workflow id), which releases recognise by
:data:`ORDER_ACTOR_PREFIX`. Ids are never reused (starts reject duplicates).

Pure (no imports): the workflows use it in their sandbox.
"""

from __future__ import annotations

RELEASE_PREFIX = "release-"
ORDER_PREFIX = "access-order-"
#: Actors that are access orders relaying to releases; their requests carry a worker's key.
ORDER_ACTOR_PREFIX = "access-order"


def release_workflow_id(release_id: str) -> str:
    """The workflow id of release ``release_id``."""
    return f"{RELEASE_PREFIX}{release_id}"


def release_id_of(workflow_id: str) -> str:
    """The release id of the release workflow ``workflow_id``."""
    return workflow_id.removeprefix(RELEASE_PREFIX)


def order_workflow_id(order_id: str) -> str:
    """The workflow id of access order ``order_id`` (also the actor its relayed updates name)."""
    return f"{ORDER_PREFIX}{order_id}"


def order_id_of(workflow_id: str) -> str:
    """The order id of the access-order workflow ``workflow_id``."""
    return workflow_id.removeprefix(ORDER_PREFIX)

"""The access registry: vetted partners, their people, grants per release, and access orders."""

from gatekeeper.adapters.registry.models import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
    Partner,
    RegisteredPerson,
)
from gatekeeper.adapters.registry.service import AccessRegistry

__all__ = [
    "AccessOrder",
    "AccessRegistry",
    "ApplyOrderRequest",
    "ApplyOrderResult",
    "LiftOrderRequest",
    "LiftOrderResult",
    "Partner",
    "RegisteredPerson",
]

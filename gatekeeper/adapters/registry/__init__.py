"""The access registry: vetted partners, their people, grants per release, public launches and
access orders. The order models live in ``gatekeeper.models.orders`` and are re-exported here."""

from gatekeeper.adapters.registry.models import Partner, PublicLaunch, RegisteredPerson
from gatekeeper.adapters.registry.service import AccessRegistry
from gatekeeper.models.orders import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    ExemptOrderRequest,
    ExemptOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
)

__all__ = [
    "AccessOrder",
    "AccessRegistry",
    "ApplyOrderRequest",
    "ApplyOrderResult",
    "ExemptOrderRequest",
    "ExemptOrderResult",
    "LiftOrderRequest",
    "LiftOrderResult",
    "Partner",
    "PublicLaunch",
    "RegisteredPerson",
]
